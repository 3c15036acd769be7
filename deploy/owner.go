package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"

	"github.com/certfleet/certfleet"
)

// lookupOwner resolves user and group names or numeric ids; "" gives -1
// (leave unchanged), as os.Chown takes it.
func lookupOwner(owner, group string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner != "" {
		if uid, err = parseID(owner); err != nil {
			u, lerr := user.Lookup(owner)
			if lerr != nil {
				return -1, -1, certfleet.Errorf(certfleet.EINVALID, "deploy owner %q: %v", owner, lerr)
			}
			if uid, err = parseID(u.Uid); err != nil {
				return -1, -1, certfleet.Errorf(certfleet.EINVALID, "deploy owner %q has uid %q", owner, u.Uid)
			}
		}
	}
	if group != "" {
		if gid, err = parseID(group); err != nil {
			g, lerr := user.LookupGroup(group)
			if lerr != nil {
				return -1, -1, certfleet.Errorf(certfleet.EINVALID, "deploy group %q: %v", group, lerr)
			}
			if gid, err = parseID(g.Gid); err != nil {
				return -1, -1, certfleet.Errorf(certfleet.EINVALID, "deploy group %q has gid %q", group, g.Gid)
			}
		}
	}
	return uid, gid, nil
}

func parseID(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return -1, strconv.ErrSyntax
	}
	return n, nil
}

// chownError words a failed chown of path to uid/gid (-1: unchanged). The
// kernel refuses (EPERM) a non-root process giving a file to another owner,
// or to a group it is not a member of; the bare "operation not permitted"
// says neither which nor what to do, so this names the group (or owner),
// the process's user and the fix. Other errors are returned wrapped.
func chownError(path string, uid, gid int, err error) error {
	if !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	me := strconv.Itoa(os.Geteuid())
	if u, lerr := user.LookupId(me); lerr == nil {
		me = u.Username
	}
	if uid >= 0 && uid != os.Geteuid() {
		owner := strconv.Itoa(uid)
		if u, lerr := user.LookupId(owner); lerr == nil {
			owner = u.Username
		}
		return certfleet.Errorf(certfleet.EINVALID,
			"cannot give %s to owner %q: only root may give a file to another user, and this process runs as %q; "+
				"leave owner unset (and use group with a 0640 mode) or run as root", path, owner, me)
	}
	group := strconv.Itoa(gid)
	if g, lerr := user.LookupGroupId(group); lerr == nil {
		group = g.Name
	}
	return certfleet.Errorf(certfleet.EINVALID,
		"cannot give %s to group %q: user %q is not a member of group %q, and only root may give a file to a group "+
			"its user is not in; add it (usermod -aG %s %s) and restart the process so the membership takes effect, "+
			"or remove group from the configuration", path, group, me, group, group, me)
}
