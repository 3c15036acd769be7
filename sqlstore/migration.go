package sqlstore

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one schema migration of a driver: a file named
// NNNN_what.sql, NNNN its version. Each driver embeds its own (the schemas
// differ in types, not in shape) and applies them its way; released
// migrations are never edited: a change to the schema is a new file with
// the next version.
type Migration struct {
	Version int
	Name    string // the file name
	SQL     string
}

// Migrations reads the migrations in fsys matching glob, in version order.
// Two files of one version are an error.
func Migrations(fsys fs.FS, glob string) ([]Migration, error) {
	names, err := fs.Glob(fsys, glob)
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version and '_'", base)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].Name, ms[i].Name, ms[i].Version)
		}
	}
	return ms, nil
}

// FirstRow is a Row over the first row of rs (the query's result and
// error), closing rs after Scan: how a driver builds QueryRow from Query.
func FirstRow(rs Rows, err error) Row { return firstRow{rs: rs, err: err} }

type firstRow struct {
	rs  Rows
	err error
}

func (r firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rs.Close()
	if !r.rs.Next() {
		if err := r.rs.Err(); err != nil {
			return err
		}
		return ErrNoRows
	}
	return r.rs.Scan(dest...)
}
