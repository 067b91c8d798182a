package job

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// AttrSignature is the message attribute that carries a job's signature:
// the lowercase hex HMAC-SHA256, under one of the signing keys, of
//
//	campaign + "\n" + body
//
// where campaign is the resetq.campaign attribute ("" when absent) and body
// the message body, byte for byte. A campaign may not contain a newline, so
// the two parts cannot be shifted into one another. Any producer can sign:
//
//	printf '%s\n%s' "$CAMPAIGN" "$BODY" | openssl dgst -sha256 -hmac "$KEY" -r | cut -d' ' -f1
//
// A job with options (the resetq.global-sign-out and resetq.incident
// attributes, SignedOptions) signs them too, in front, in that order:
// "resetq.global-sign-out=" + its value + "\n" + "resetq.incident=" + its
// value + "\n" + campaign + "\n" + body (each only when present), so nobody
// can strip one from a signed job, nor add one. An option's value may not
// contain a newline, so an option cannot be shifted into the campaign.
const AttrSignature = "resetq.signature"

// MinKeyLen is the shortest signing key accepted, in bytes: 32 bytes, as
// `openssl rand -hex 32` (64 characters) gives more than enough.
const MinKeyLen = 32

// Sign returns the signature of a job for AttrSignature.
func Sign(key []byte, campaign, body string) string {
	return hex.EncodeToString(jobMAC(key, nil, campaign, body))
}

// SignMessage returns the signature for AttrSignature of a job with the
// given attributes (the campaign and resetq.global-sign-out are signed).
func SignMessage(key []byte, attrs map[string]Attribute, body string) string {
	return hex.EncodeToString(jobMAC(key, signedOptions(attrs), attrs[AttrCampaign].StringValue, body))
}

// SignedOptions are the attributes that ask a worker for more than the
// reset, covered by the signature in this order.
var SignedOptions = []string{AttrGlobalSignOut, AttrIncident}

// signedOptions is the signed prefix of a job's options, nil when it has none.
func signedOptions(attrs map[string]Attribute) []byte {
	var out []byte
	for _, name := range SignedOptions {
		if a, ok := attrs[name]; ok {
			out = append(out, name+"="+a.StringValue+"\n"...)
		}
	}
	return out
}

func jobMAC(key, options []byte, campaign, body string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(options)
	mac.Write([]byte(campaign))
	mac.Write([]byte{'\n'})
	mac.Write([]byte(body))
	return mac.Sum(nil)
}

// Errors of VerifySignature; the worker dead-letters the job as
// bad_signature with the error's text.
var (
	ErrUnsigned     = errors.New("the job has no " + AttrSignature + " attribute")
	ErrBadSignature = errors.New("the job's " + AttrSignature + " matches no signing key")
)

// VerifySignature checks the message's signature against each key (any may
// match, so keys can be rotated: workers accept old and new while producers
// switch). The comparison is constant-time.
func VerifySignature(keys [][]byte, m Message) error {
	a, ok := m.Attributes[AttrSignature]
	if !ok {
		return ErrUnsigned
	}
	got, err := hex.DecodeString(a.StringValue)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w (not %d hex bytes)", ErrBadSignature, sha256.Size)
	}
	campaign := m.Campaign()
	if strings.Contains(campaign, "\n") {
		return fmt.Errorf("%w (the campaign contains a newline)", ErrBadSignature)
	}
	for _, name := range SignedOptions {
		if strings.HasPrefix(campaign, name+"=") {
			// Else "resetq.global-sign-out=true\n" + "" + "\n" + body, signed,
			// would also read as that campaign and a body with a newline in
			// front: the request could be stripped.
			return fmt.Errorf("%w (the campaign starts with %s=)", ErrBadSignature, name)
		}
		if strings.Contains(m.Attributes[name].StringValue, "\n") {
			// Else the value "true\n<campaign>" signs the same bytes as the
			// value "true" with that campaign and a body with a newline in
			// front: the option could be stripped or moved.
			return fmt.Errorf("%w (the %s attribute contains a newline)", ErrBadSignature, name)
		}
	}
	for _, k := range keys {
		if hmac.Equal(got, jobMAC(k, signedOptions(m.Attributes), campaign, m.Body)) {
			return nil
		}
	}
	return ErrBadSignature
}

// ReadKeyFile reads signing keys, one a line; blank lines and lines that
// start with # are skipped, and surrounding spaces trimmed. The key is the
// line's text itself (e.g. the 64 hex characters of `openssl rand -hex 32`),
// so shell recipes can pass it to openssl -hmac as it is. The first key
// signs; a worker accepts any of them. A file that others may read or
// change is refused (checkKeyFileMode).
func ReadKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // of the file a symlink (a Kubernetes Secret's) leads to
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	if err := checkKeyFileMode(path, fi, os.Getuid()); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	var keys [][]byte
	s := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < MinKeyLen {
			return nil, fmt.Errorf("%s:%d: signing key is %d bytes, want at least %d (make one with: openssl rand -hex 32)", path, n, len(line), MinKeyLen)
		}
		keys = append(keys, []byte(line))
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read signing keys %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no signing key in the file", path)
	}
	return keys, nil
}

// checkKeyFileMode refuses a key file that users other than uid may read
// or change, as OpenSSH does a private key: any group or other permission
// on a file uid owns; any permission for others on a file another user owns
// (a Kubernetes Secret is root's, read through the pod's fsGroup).
func checkKeyFileMode(path string, fi os.FileInfo, uid int) error {
	owner, ok := fileOwner(fi)
	if !ok {
		return nil // no Unix owner and modes (Windows)
	}
	perm := fi.Mode().Perm()
	switch {
	case owner == uid && perm&0o077 != 0:
		return fmt.Errorf("%s: signing key file has mode %#o, so its group or others can read or change it: chmod 600 %s", path, perm, path)
	case perm&0o007 != 0:
		return fmt.Errorf("%s: signing key file has mode %#o, so any user can read or change it: chmod o= %s (a Kubernetes Secret: defaultMode: 0440 and the pod's fsGroup)", path, perm, path)
	}
	return nil
}
