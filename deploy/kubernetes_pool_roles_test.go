package deploy

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/internal/testenv"
)

// The pool-roles component (one campaign across many accounts): the
// ConfigMap it generates, the file's key in it, and the variable of
// --pool-roles that names the mounted file.
const (
	poolRolesComponent = "kubernetes/components/pool-roles"
	poolRolesConfigMap = "resetq-pool-roles"
	poolRolesKey       = "pool-roles.txt"
	poolRolesVar       = "RESETQ_POOL_ROLES"
)

// TestPoolRolesComponent: the component's pool-roles.txt is a roles file
// resetq reads (accounts.ParseRoles), with a line with and one without an
// external ID; with the component added to the base and to every overlay,
// every container running `resetq work` or `resetq enqueue` (the rotation's
// producer too) sets RESETQ_POOL_ROLES to the file that the key
// pool-roles.txt of the build's ConfigMap resetq-pool-roles puts in a
// read-only mount, and that ConfigMap holds the component's pool-roles.txt. Without the
// component no build sets the variable or mounts the ConfigMap.
func TestPoolRolesComponent(t *testing.T) {
	t.Parallel()
	example := readFile(t, poolRolesComponent+"/"+poolRolesKey)
	roles, err := accounts.ParseRoles(strings.NewReader(example), poolRolesKey)
	if err != nil {
		t.Fatalf("%s/%s: %v", poolRolesComponent, poolRolesKey, err)
	}
	if len(roles) < 2 || !slices.ContainsFunc(slices.Collect(maps.Values(roles)), func(r accounts.Role) bool { return r.ExternalID != "" }) {
		t.Errorf("%s/%s has %d entries: want examples with and without external-id=", poolRolesComponent, poolRolesKey, len(roles))
	}
	for _, dir := range kustomizations(t) {
		if includesComponent(t, dir, poolRolesComponent) {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			resetqContainers(objs, func(_ k8sObject, pod, c any, name string) {
				if v, ok := containerEnv(objs, c)[poolRolesVar]; ok {
					t.Errorf("%s: sets %s=%s without the pool-roles component", name, poolRolesVar, v)
				}
				for _, v := range klist(pod, "volumes") {
					if strings.HasPrefix(kstr(v, "configMap", "name"), poolRolesConfigMap) {
						t.Errorf("%s: mounts %s without the pool-roles component", name, kstr(v, "configMap", "name"))
					}
				}
			})
		})
	}
	for _, dir := range withComponent(t, poolRolesComponent) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			n := 0
			resetqContainers(objs, func(_ k8sObject, pod, c any, name string) {
				n++
				file := containerEnv(objs, c)[poolRolesVar]
				cm, key, data, err := configMapFile(objs, pod, c, file)
				switch {
				case err != nil:
					t.Errorf("%s: %s=%q: %v", name, poolRolesVar, file, err)
				case !strings.HasPrefix(cm, poolRolesConfigMap+"-") || key != poolRolesKey:
					t.Errorf("%s: %s is key %q of ConfigMap %q, want key %s of the generated %s", name, poolRolesVar, key, cm, poolRolesKey, poolRolesConfigMap)
				case data != example:
					t.Errorf("%s: the mounted roles file is not %s/%s:\n%s", name, poolRolesComponent, poolRolesKey, data)
				}
			})
			if n == 0 {
				t.Fatal("no container runs resetq work or enqueue")
			}
		})
	}
	// How to give the file, where an operator reads it.
	for f, want := range map[string]string{
		poolRolesComponent + "/kustomization.yaml": "behavior: replace",
		"README.md":     "components/pool-roles",
		"iam/README.md": "--pool-roles",
	} {
		if !strings.Contains(readFile(t, f), want) {
			t.Errorf("%s does not say %q", f, want)
		}
	}
}

// TestPoolRolesAccepted: resetq work and resetq enqueue have --pool-roles
// with the variable RESETQ_POOL_ROLES, and every container of every build
// with the pool-roles component, given the component's roles file, gets past
// every flag and setting and stops only at the missing AWS Region.
func TestPoolRolesAccepted(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"work", "enqueue"} {
		if f, ok := commandHelp(t, cmd)["pool-roles"]; !ok || f.Env != poolRolesVar {
			t.Fatalf("`resetq %s --help` has no --pool-roles with the variable %s (%+v)", cmd, poolRolesVar, f)
		}
	}
	bin := testenv.Binary(t)
	for _, dir := range withComponent(t, poolRolesComponent) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			resetqContainers(objs, func(o k8sObject, pod, c any, name string) {
				checkPod(t, objs, o)
				env := podEnvironment(t, objs, pod, c)
				if code, out := runAsContainer(t, bin, klist(c, "args"), env); code != 2 || !strings.Contains(out, "no AWS Region") {
					t.Errorf("%s: resetq %v with the roles file exits %d, want 2 at the missing AWS Region:\n%s", name, klist(c, "args"), code, out)
				}
			})
		})
	}
}

// configMapFile finds the file at path in container c of pod: the mount
// holding it, which must be read-only, its ConfigMap volume and item, and
// the content the build's ConfigMap gives it.
func configMapFile(objs []k8sObject, pod, c any, path string) (configMap, key, data string, err error) {
	if !strings.HasPrefix(path, "/") {
		return "", "", "", fmt.Errorf("not an absolute path")
	}
	var mount any
	for _, m := range klist(c, "volumeMounts") {
		mp := strings.TrimSuffix(kstr(m, "mountPath"), "/")
		if strings.HasPrefix(path, mp+"/") && len(mp) > len(strings.TrimSuffix(kstr(mount, "mountPath"), "/")) {
			mount = m
		}
	}
	if mount == nil {
		return "", "", "", fmt.Errorf("on no volume mount")
	}
	if kget(mount, "readOnly") != true {
		return "", "", "", fmt.Errorf("the mount %s is not readOnly", kstr(mount, "mountPath"))
	}
	var vol any
	for _, v := range klist(pod, "volumes") {
		if kstr(v, "name") == kstr(mount, "name") {
			vol = v
		}
	}
	cmv := kget(vol, "configMap")
	if cmv == nil {
		return "", "", "", fmt.Errorf("the volume %q is not a ConfigMap's", kstr(mount, "name"))
	}
	inVol := strings.TrimPrefix(path, strings.TrimSuffix(kstr(mount, "mountPath"), "/")+"/")
	key = inVol // without items, each key is a file of its name
	if items := klist(cmv, "items"); len(items) > 0 {
		key = ""
		for _, it := range items {
			if kstr(it, "path") == inVol {
				key = kstr(it, "key")
			}
		}
	}
	configMap = kstr(cmv, "name")
	d, ok := kmap(knamed(objs, "ConfigMap", configMap), "data")[key]
	if !ok {
		return configMap, key, "", fmt.Errorf("the build has no key %q of ConfigMap %q", key, configMap)
	}
	return configMap, key, d, nil
}
