package worker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	oldKey = []byte("0123456789abcdef0123456789abcdef-old")
	newKey = []byte("fedcba9876543210fedcba9876543210-new")
)

func signed(key []byte, campaign, body string) Message {
	attrs := map[string]Attribute{AttrSignature: {DataType: "String", StringValue: Sign(key, campaign, body)}}
	if campaign != "" {
		attrs[AttrCampaign] = Attribute{DataType: "String", StringValue: campaign}
	}
	return Message{Body: body, Attributes: attrs}
}

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	body := job(pool, "alice")
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
		{"body changed", func() Message { m := signed(newKey, "c1", body); m.Body = job(pool, "mallory"); return m }(), ErrBadSignature},
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

// TestSignedJobs: with signing keys, only jobs signed with one of them
// reach Cognito; the others are dead-lettered as bad_signature with their
// body unchanged, and a retried job keeps its signature.
func TestSignedJobs(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	called := map[string]int{}
	b := newBundle(func(_ context.Context, j Job) error {
		mu.Lock()
		defer mu.Unlock()
		called[j.Username]++
		if j.Username == "flaky" && called[j.Username] == 1 {
			return codeErr("InternalErrorException", "try again")
		}
		return nil
	})
	b.cfg.SigningKeys = [][]byte{newKey, oldKey}
	push := func(m Message) { b.q.push(m.Body, m.Attributes) }
	push(signed(newKey, "c1", job(pool, "alice")))
	push(signed(oldKey, "c1", job(pool, "bob")))
	push(signed(newKey, "c1", job(pool, "flaky")))
	push(Message{Body: job(pool, "unsigned")})
	forged := signed(newKey, "c1", job(pool, "alice"))
	forged.Body = job(pool, "victim")
	push(forged)
	push(signed([]byte("a-key-the-worker-does-not-know-at-all"), "c1", job(pool, "eve")))
	b.run(t)

	if len(called) != 3 || called["alice"] != 1 || called["bob"] != 1 || called["flaky"] != 2 {
		t.Fatalf("Cognito calls %v, want alice, bob once and flaky twice", called)
	}
	dl := b.dlq.all()
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want 3: %+v", len(dl), dl)
	}
	bodies := map[string]bool{}
	for _, d := range dl {
		if d.Attributes[AttrReason].StringValue != ReasonBadSignature {
			t.Errorf("reason %q, want %s", d.Attributes[AttrReason].StringValue, ReasonBadSignature)
		}
		bodies[d.Body] = true
	}
	for _, u := range []string{"unsigned", "victim", "eve"} {
		if !bodies[job(pool, u)] {
			t.Errorf("no dead letter with %s's body unchanged", u)
		}
	}
	_, _, _, sent := b.q.snapshot()
	if len(sent) != 1 || sent[0].Attributes[AttrSignature].StringValue != Sign(newKey, "c1", job(pool, "flaky")) {
		t.Fatalf("requeued %+v, want flaky's job with its signature", sent)
	}
}

func TestWithAttributesKeepsSignature(t *testing.T) {
	t.Parallel()
	orig := signed(newKey, "c", job(pool, "a")).Attributes
	for _, k := range []string{"x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "zz"} {
		orig[k] = Attribute{DataType: "String", StringValue: "v"}
	}
	got := withAttributes(orig, map[string]string{AttrReason: "r", AttrError: "e", AttrAttempts: "1", AttrFailedAt: "t"})
	if _, ok := got[AttrSignature]; !ok || len(got) != maxAttributes {
		t.Fatalf("signature dropped or %d attributes: %v", len(got), got)
	}
}

// TestHashUserKeyed: with a key, the logged hash of a username depends on
// the key, so a list of usernames hashed without it matches nothing.
func TestHashUserKeyed(t *testing.T) {
	t.Parallel()
	plain := hashUser(nil, "alice@example.com")
	k1 := hashUser([]byte("deployment-one-key-0123456789abcdef"), "alice@example.com")
	k2 := hashUser([]byte("deployment-two-key-0123456789abcdef"), "alice@example.com")
	if plain == k1 || k1 == k2 || !strings.HasPrefix(k1, "hmac:") || !strings.HasPrefix(plain, "sha256:") {
		t.Fatalf("hashes %q %q %q: want a keyed hash that differs by key", plain, k1, k2)
	}
	if k1 != hashUser([]byte("deployment-one-key-0123456789abcdef"), "alice@example.com") {
		t.Fatal("the keyed hash is not stable")
	}
}
