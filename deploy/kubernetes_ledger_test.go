package deploy

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/resetq/resetq/internal/testenv"
)

// ledgerVar is the variable of --ledger-table (work, enqueue, status, report).
const ledgerVar = "RESETQ_LEDGER_TABLE"

// TestKubernetesLedgerSetting: base/resetq.env names the ledger's table in
// a commented line (off by default, as the stack's Ledger is), whose table
// is the stack's default name; every build leaves it unset; and with the
// line uncommented (the key in the generated ConfigMap) every container
// running resetq work or enqueue, in every build, gets it (the rotation's
// CronJob through an optional key reference, so a build without it still
// starts) and accepts it, stopping only at the missing AWS Region.
func TestKubernetesLedgerSetting(t *testing.T) {
	t.Parallel()
	env := readFile(t, "kubernetes/base/resetq.env")
	m := regexp.MustCompile(`(?m)^# ` + ledgerVar + `=(\S+)$`).FindStringSubmatch(env)
	if m == nil {
		t.Fatalf("kubernetes/base/resetq.env has no commented line %q", "# "+ledgerVar+"=TABLE")
	}
	table := m[1]
	if regexp.MustCompile(`(?m)^` + ledgerVar + `=`).MatchString(env) {
		t.Errorf("kubernetes/base/resetq.env sets %s: the ledger is off by default, as the stack's Ledger is", ledgerVar)
	}
	if p := topLevelBlocks(t, readFile(t, cfnTemplate), "Parameters")["LedgerTableName"]; !strings.Contains(p, "Default: "+table+"\n") {
		t.Errorf("resetq.env's table %s is not the stack's LedgerTableName default:\n%s", table, p)
	}

	bin := testenv.Binary(t)
	for _, dir := range kustomizations(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			resetqContainers(objs, func(_ k8sObject, pod, c any, name string) {
				if v, ok := podEnvironment(t, objs, pod, c)[ledgerVar]; ok && v != "" {
					t.Errorf("%s: %s=%q while resetq.env leaves it commented", name, ledgerVar, v)
				}
				for _, e := range klist(c, "env") {
					if kstr(e, "name") == ledgerVar && kget(e, "valueFrom", "configMapKeyRef", "optional") != true {
						t.Errorf("%s: %s from a ConfigMap key that is not optional: without the ledger the pod would not start", name, ledgerVar)
					}
				}
			})

			// The line uncommented: the generated ConfigMap holds the key.
			objs = deepCopy(t, objs)
			n := 0
			for _, cm := range kfind(objs, "ConfigMap") {
				if strings.HasPrefix(kstr(cm, "metadata", "name"), "resetq-config") {
					kget(cm, "data").(map[string]any)[ledgerVar] = table
					n++
				}
			}
			if n == 0 {
				t.Fatal("no ConfigMap resetq-config")
			}
			resetqContainers(objs, func(_ k8sObject, pod, c any, name string) {
				env := podEnvironment(t, objs, pod, c)
				if env[ledgerVar] != table {
					t.Errorf("%s: %s=%q with resetq.env's line uncommented, want %s: the ledger is every command's or none's", name, ledgerVar, env[ledgerVar], table)
				}
				if code, out := runAsContainer(t, bin, klist(c, "args"), env); code != 2 || !strings.Contains(out, "no AWS Region") {
					t.Errorf("%s with %s=%s exits %d, want 2 at the missing AWS Region:\n%s", name, ledgerVar, table, code, out)
				}
			})
		})
	}
}

// deepCopy copies rendered objects, which kustomize's cache shares.
func deepCopy(t *testing.T, objs []k8sObject) []k8sObject {
	t.Helper()
	b, err := json.Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	var out []k8sObject
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
