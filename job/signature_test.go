package job

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	oldKey = []byte("0123456789abcdef0123456789abcdef-old")
	newKey = []byte("fedcba9876543210fedcba9876543210-new")
)

const pool = "us-east-1_Pool1"

func jobBody(pool, user string) string {
	return fmt.Sprintf(`{"UserPoolId":%q,"Username":%q}`, pool, user)
}

func signed(key []byte, campaign, body string) Message {
	attrs := map[string]Attribute{AttrSignature: {DataType: "String", StringValue: Sign(key, campaign, body)}}
	if campaign != "" {
		attrs[AttrCampaign] = Attribute{DataType: "String", StringValue: campaign}
	}
	return Message{Body: body, Attributes: attrs}
}

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	body := jobBody(pool, "alice")
	keys := [][]byte{newKey, oldKey}
	shifted := signed(oldKey, "c1", "x\n"+body) // campaign "c1", body "x\n{...}"
	shifted.Attributes[AttrCampaign] = Attribute{DataType: "String", StringValue: "c1\nx"}
	shifted.Body = body
	tests := []struct {
		name string
		m    Message
		want error // nil, ErrUnsigned or ErrBadSignature
	}{
		{"signed with the new key", signed(newKey, "c1", body), nil},
		{"signed with the old key (rotation)", signed(oldKey, "c1", body), nil},
		{"no campaign", signed(newKey, "", body), nil},
		{"unsigned", Message{Body: body}, ErrUnsigned},
		{"unknown key", signed([]byte("another-key-another-key-another-key"), "c1", body), ErrBadSignature},
		{"body changed", func() Message { m := signed(newKey, "c1", body); m.Body = jobBody(pool, "mallory"); return m }(), ErrBadSignature},
		{"campaign changed", func() Message {
			m := signed(newKey, "c1", body)
			m.Attributes[AttrCampaign] = Attribute{DataType: "String", StringValue: "c2"}
			return m
		}(), ErrBadSignature},
		{"campaign removed", func() Message { m := signed(newKey, "c1", body); delete(m.Attributes, AttrCampaign); return m }(), ErrBadSignature},
		{"newline moved from body to campaign", shifted, ErrBadSignature},
		{"not hex", Message{Body: body, Attributes: map[string]Attribute{AttrSignature: {StringValue: "zz"}}}, ErrBadSignature},
		{"too short", Message{Body: body, Attributes: map[string]Attribute{AttrSignature: {StringValue: Sign(newKey, "", body)[:62]}}}, ErrBadSignature},
		{"uppercase hex is the same bytes", func() Message {
			m := signed(newKey, "c1", body)
			m.Attributes[AttrSignature] = Attribute{StringValue: strings.ToUpper(m.Attributes[AttrSignature].StringValue)}
			return m
		}(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature(keys, tt.m)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("VerifySignature = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSignMatchesOpenSSLRecipe checks the README's recipe for producers
// other than resetq enqueue against the real openssl.
func TestSignMatchesOpenSSLRecipe(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is missing")
		}
		t.Skip("openssl is missing")
	}
	key, campaign := string(newKey), "rotation-2026-q4"
	body := `{"UserPoolId":"us-east-1_Ab","Username":"zoë"}`
	cmd := exec.Command("sh", "-c", `printf '%s\n%s' "$CAMPAIGN" "$BODY" | openssl dgst -sha256 -hmac "$KEY" -r | cut -d' ' -f1`)
	cmd.Env = append(os.Environ(), "CAMPAIGN="+campaign, "BODY="+body, "KEY="+key)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), Sign([]byte(key), campaign, body); got != want {
		t.Fatalf("openssl recipe gives %s, Sign gives %s", got, want)
	}
}

func TestReadKeyFile(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", MinKeyLen)
	tests := []struct {
		name, text string
		want       []string
		err        string
	}{
		{"one key", long + "\n", []string{long}, ""},
		{"rotation, comments, blanks, spaces", "# new first\n  " + long + "2  \n\n# old\n" + long + "1\n", []string{long + "2", long + "1"}, ""},
		{"short key names its line", "# c\n" + long + "\nshort\n", nil, ":3: signing key is 5 bytes"},
		{"empty", "# nothing\n\n", nil, "no signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			keys, err := ReadKeyFile(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range keys {
				got = append(got, string(k))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("keys %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := ReadKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file gave no error")
	}
}

// TestReadKeyFileMode: a key file its owner's group or others may read or
// change is refused with the chmod that fixes it, also behind a symlink
// (a Kubernetes Secret's file is one); 0600 and 0400 are read.
func TestReadKeyFileMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode    os.FileMode
		refused bool
	}{
		{0o600, false}, {0o400, false},
		{0o644, true}, {0o640, true}, {0o604, true}, {0o620, true}, {0o602, true}, {0o660, true},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "keys")
			if err := os.WriteFile(path, []byte(strings.Repeat("k", MinKeyLen)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, "link")
			if err := os.Symlink(path, link); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{path, link} {
				_, err := ReadKeyFile(p)
				switch {
				case !tc.refused && err != nil:
					t.Errorf("%s: %v", p, err)
				case tc.refused && (err == nil || !strings.Contains(err.Error(), "chmod 600 "+p)):
					t.Errorf("%s (mode %v): err = %v, want a refusal saying chmod 600", p, tc.mode, err)
				}
			}
		})
	}
}

// TestReadKeyFileOtherOwner: a file another user owns may be read by its
// group (a Kubernetes Secret: root's, mode 0440, group fsGroup), not by
// every user. Needs root, to give the file away.
func TestReadKeyFileOtherOwner(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(strings.Repeat("k", MinKeyLen)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, os.Getuid()+1, -1); err != nil {
		if os.Getenv("CI") == "true" { // CI runs as root
			t.Fatalf("cannot give the file to another user: %v", err)
		}
		t.Skipf("cannot give the file to another user (needs root): %v", err)
	}
	for _, tc := range []struct {
		mode    os.FileMode
		refused bool
	}{{0o440, false}, {0o400, false}, {0o444, true}, {0o640, false}} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadKeyFile(path)
		if tc.refused != (err != nil) {
			t.Errorf("mode %v, owned by another user: err = %v, want refused %v", tc.mode, err, tc.refused)
		}
	}
}

// TestSignedOptionNewline: an option's value with a newline is refused.
// Else the value "true\n<campaign>" with no campaign signs the same bytes
// as the value "true", that campaign, and a body with a newline in front:
// the option could be moved or stripped.
func TestSignedOptionNewline(t *testing.T) {
	t.Parallel()
	body := "\n" + jobBody(pool, "alice")
	for _, opt := range SignedOptions {
		attrs := map[string]Attribute{opt: {DataType: "String", StringValue: "true\nc1"}}
		m := Message{Body: body, Attributes: attrs}
		m.Attributes[AttrSignature] = Attribute{DataType: "String", StringValue: SignMessage(newKey, attrs, body)}
		if err := VerifySignature([][]byte{newKey}, m); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "newline") {
			t.Errorf("%s with a newline in its value: %v, want refused", opt, err)
		}
	}
	// The incident option is signed like the sign-out: stripped, refused.
	attrs := map[string]Attribute{AttrIncident: {DataType: "String", StringValue: "true"}}
	sig := SignMessage(newKey, attrs, body)
	stripped := Message{Body: body, Attributes: map[string]Attribute{AttrSignature: {DataType: "String", StringValue: sig}}}
	if err := VerifySignature([][]byte{newKey}, stripped); !errors.Is(err, ErrBadSignature) {
		t.Errorf("incident option stripped from a signed job: %v, want refused", err)
	}
}

// TestStateOf: with keys, a copy's progress counts only under a state
// signature for its own job; without keys it is taken as it is.
func TestStateOf(t *testing.T) {
	t.Parallel()
	body := jobBody(pool, "alice")
	job := Message{ID: "m2", Body: body, Attributes: map[string]Attribute{}}
	job.Attributes[AttrSignature] = Attribute{DataType: "String", StringValue: SignMessage(newKey, job.Attributes, body)}
	st := State{JobID: "m1", Attempts: 2, DeferredSince: time.Date(2026, 12, 4, 1, 2, 3, 0, time.UTC), Steps: []string{"password_killed", "signed_out"}}
	copyOf := func(m Message, attrs map[string]string) Message {
		out := Message{ID: m.ID, Body: m.Body, Attributes: map[string]Attribute{}}
		for k, v := range m.Attributes {
			out.Attributes[k] = v
		}
		for k, v := range attrs {
			out.Attributes[k] = Attribute{DataType: "String", StringValue: v}
		}
		return out
	}
	signedCopy := copyOf(job, st.Attributes(newKey, job))
	if got, ok := StateOf([][]byte{oldKey, newKey}, signedCopy); !ok || got.JobID != "m1" || got.Attempts != 2 || !got.DeferredSince.Equal(st.DeferredSince) || len(got.Steps) != 2 {
		t.Fatalf("signed copy: %+v %v", got, ok)
	}
	other := copyOf(signedCopy, nil)
	other.Body = jobBody(pool, "bob") // the state moved onto another job
	if got, ok := StateOf([][]byte{newKey}, other); ok || got.Attempts != 0 || got.JobID != "m2" || got.Steps != nil {
		t.Fatalf("state moved to another job: %+v %v, want fresh", got, ok)
	}
	tampered := copyOf(signedCopy, map[string]string{AttrAttempts: "99"})
	if got, ok := StateOf([][]byte{newKey}, tampered); ok || got.Attempts != 0 {
		t.Fatalf("tampered attempts: %+v %v, want fresh", got, ok)
	}
	if got, ok := StateOf(nil, tampered); ok || got.Attempts != 99 {
		t.Fatalf("without keys: %+v %v, want the attributes as they are, unverified", got, ok)
	}
}
