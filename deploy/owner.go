package deploy

import (
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
