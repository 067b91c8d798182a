// Package accounts says in which AWS account each user pool is and with
// which credentials resetq reaches it: the default credentials, or a role
// in the pool's account (--pool-roles) assumed through STS.
package accounts

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/resetq/resetq/job"
)

// Role is how resetq reaches the pools of one line of a roles file.
type Role struct {
	ARN        string // arn:PARTITION:iam::ACCOUNT:role/NAME
	ExternalID string // sts:ExternalId, or ""
	Account    string // the account in ARN
}

// Roles maps a user pool ID to the role that reaches it.
type Roles map[string]Role

// LineError is a roles file's line that cannot be read.
type LineError struct {
	Path string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg) }

var (
	// roleARN is an IAM role's ARN; the account is its fifth field.
	roleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::([0-9]{12}):role/[\w+=,.@/-]{1,512}$`)
	// externalID is what sts:AssumeRole takes as ExternalId.
	externalID = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// LoadRoles reads a roles file (ParseRoles).
func LoadRoles(path string) (Roles, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pool roles: %w", err)
	}
	defer f.Close()
	return ParseRoles(f, path)
}

// ParseRoles reads one pool a line, "POOL_ID ROLE_ARN [external-id=ID]",
// skipping blank lines and "#" comments. The error of a line that cannot
// be read is a *LineError naming path and the line.
func ParseRoles(r io.Reader, path string) (Roles, error) {
	roles := Roles{}
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		bad := func(format string, a ...any) error {
			return &LineError{Path: path, Line: n, Msg: fmt.Sprintf(format, a...)}
		}
		if len(fields) < 2 || len(fields) > 3 {
			return nil, bad("want POOL_ID ROLE_ARN [external-id=ID], got %d fields", len(fields))
		}
		pool, arn := fields[0], fields[1]
		if err := job.ValidatePoolID(pool); err != nil {
			return nil, bad("%v", strings.TrimPrefix(err.Error(), "field UserPoolId "))
		}
		m := roleARN.FindStringSubmatch(arn)
		if m == nil {
			return nil, bad("%q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", job.Truncate(arn, 80))
		}
		role := Role{ARN: arn, Account: m[1]}
		if len(fields) == 3 {
			id, ok := strings.CutPrefix(fields[2], "external-id=")
			if !ok {
				return nil, bad("third field %q: want external-id=ID", job.Truncate(fields[2], 80))
			}
			if len(id) < 2 || len(id) > 1224 || !externalID.MatchString(id) {
				return nil, bad("external ID: want 2 to 1224 of letters, digits and +=,.@:/-_")
			}
			role.ExternalID = id
		}
		if first, dup := seen[pool]; dup {
			return nil, bad("pool %s is already on line %d", pool, first)
		}
		seen[pool] = n
		roles[pool] = role
	}
	if err := sc.Err(); err != nil {
		return nil, &LineError{Path: path, Line: n + 1, Msg: err.Error()}
	}
	return roles, nil
}
