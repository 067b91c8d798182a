package deploy

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/testenv"
)

// TestContainersAcceptTheirSettings runs the built binary as each container
// of each build runs it (the base and every overlay, alone and with each
// component): its args, and the environment Kubernetes would give it (its
// ConfigMaps, its env, and the service links of the build's Services unless
// the pod turns them off). resetq refuses an unknown RESETQ_* variable, an
// unknown flag and contradictory settings (RESETQ_INCIDENT=true with
// RESETQ_UNREACHABLE=dead-letter, ...) with exit 2 before anything else; so
// each container must get past all of that and stop only at the first thing
// that needs AWS: "no AWS Region" (the queue URL is swapped for one that
// names none, and no AWS variable is set). Values the build cannot hold are
// stood in for: files (the signing keys, the Redis CA) by temporary files, the
// state folder (the emptyDir) by an empty temporary folder, a
// Secret's key by a placeholder of the right form, the downward API by
// plausible values; a file of a ConfigMap (the roles file) by a temporary
// file with the ConfigMap's content.
func TestContainersAcceptTheirSettings(t *testing.T) {
	t.Parallel()
	bin := testenv.Binary(t)
	for _, dir := range allKustomizations(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			n := 0
			resetqContainers(objs, func(o k8sObject, pod, c any, name string) {
				n++
				env := podEnvironment(t, objs, pod, c)
				code, out := runAsContainer(t, bin, klist(c, "args"), env)
				if code != 2 || !strings.Contains(out, "no AWS Region") {
					t.Errorf("%s: resetq %v in the container's environment exits %d, want 2 at the missing AWS Region, past every flag and setting:\n%s\nenvironment: %v",
						name, klist(c, "args"), code, out, env)
				}
			})
			if n == 0 {
				t.Fatal("no container runs resetq")
			}
		})
	}

	// The check itself catches a setting resetq refuses.
	objs := kustomize(t, "kubernetes/base")
	dep := knamed(objs, "Deployment", "resetq")
	pod := kget(podTemplate(dep), "spec")
	c := klist(pod, "containers")[0]
	env := podEnvironment(t, objs, pod, c)
	env["RESETQ_NOT_A_FLAG"] = "1"
	if code, out := runAsContainer(t, bin, klist(c, "args"), env); code != 2 || !strings.Contains(out, "RESETQ_NOT_A_FLAG") {
		t.Errorf("with RESETQ_NOT_A_FLAG set, the base's worker exits %d: want 2 naming it:\n%s", code, out)
	}
}

// runAsContainer runs bin with args (Kubernetes' $(VAR) references expanded
// from env) in exactly env, and returns its exit code and output.
func runAsContainer(t *testing.T, bin string, args []any, env map[string]string) (int, string) {
	t.Helper()
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	var argv []string
	for _, a := range args {
		s, _ := a.(string)
		argv = append(argv, ref.ReplaceAllStringFunc(s, func(m string) string {
			if v, ok := env[ref.FindStringSubmatch(m)[1]]; ok {
				return v
			}
			return m // Kubernetes leaves an unknown reference as it is
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Env = []string{} // like env -i: nothing of the test's own environment
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("resetq %v did not exit within a minute:\n%s", argv, out)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("resetq %v: %v", argv, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// podEnvironment is the environment Kubernetes gives container c of pod,
// with stand-ins for what the build cannot hold (see above).
func podEnvironment(t *testing.T, objs []k8sObject, pod, c any) map[string]string {
	t.Helper()
	env := map[string]string{}
	// Service links, for every Service of the namespace, unless turned off
	// (enableServiceLinks defaults to true).
	if kget(pod, "enableServiceLinks") != false {
		for _, svc := range kfind(objs, "Service") {
			maps.Copy(env, serviceLinks(svc))
		}
	}
	for _, ef := range klist(c, "envFrom") {
		if cm := kstr(ef, "configMapRef", "name"); cm != "" {
			for k, v := range kmap(knamed(objs, "ConfigMap", cm), "data") {
				env[kstr(ef, "prefix")+k] = v
			}
		}
	}
	for _, e := range klist(c, "env") {
		name := kstr(e, "name")
		switch {
		case kget(e, "valueFrom", "configMapKeyRef") != nil:
			ref := kget(e, "valueFrom", "configMapKeyRef")
			env[name] = kmap(knamed(objs, "ConfigMap", kstr(ref, "name")), "data")[kstr(ref, "key")]
		case kget(e, "valueFrom", "secretKeyRef") != nil:
			env[name] = "secret-value"
			if name == "RESETQ_REDIS_URL" {
				env[name] = "rediss://resetq:password@127.0.0.1:6379"
			}
		case kget(e, "valueFrom", "fieldRef") != nil:
			env[name] = "resetq-test"
		case kget(e, "valueFrom", "resourceFieldRef") != nil:
			env[name] = "268435456" // limits.memory, in bytes
		default:
			env[name] = kstr(e, "value")
		}
	}
	// Stand-ins: a queue URL that names no Region, and temporary files.
	if _, ok := env["RESETQ_QUEUE_URL"]; ok {
		env["RESETQ_QUEUE_URL"] = "http://127.0.0.1:1/resetq-jobs"
	}
	for _, k := range []string{"RESETQ_SIGNING_KEY_FILE", "RESETQ_USERNAME_HASH_KEY_FILE", "RESETQ_REDIS_CA_FILE"} {
		if _, ok := env[k]; ok {
			f := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(f, []byte(strings.Repeat("ab", 32)+"\n"), 0o400); err != nil {
				t.Fatal(err)
			}
			env[k] = f
		}
	}
	// The state folder: an empty, writable folder, as the emptyDir is.
	if _, ok := env[stateDirVar]; ok {
		env[stateDirVar] = t.TempDir()
	}
	// The roles file: the content its ConfigMap gives it.
	if f, ok := env[poolRolesVar]; ok {
		_, _, data, err := configMapFile(objs, pod, c, f)
		if err != nil {
			t.Fatalf("%s=%s: %v", poolRolesVar, f, err)
		}
		env[poolRolesVar] = filepath.Join(t.TempDir(), "pool-roles.txt")
		if err := os.WriteFile(env[poolRolesVar], []byte(data), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// serviceLinks are the variables Kubernetes puts in a pod for a Service of
// its namespace (the Docker links' form): NAME_SERVICE_HOST,
// NAME_SERVICE_PORT, NAME_SERVICE_PORT_<PORT NAME>, NAME_PORT and
// NAME_PORT_<port>_<PROTOCOL>{,_PROTO,_PORT,_ADDR}, NAME being the Service's
// name in capitals with dashes as underscores.
func serviceLinks(svc k8sObject) map[string]string {
	name := strings.ToUpper(strings.ReplaceAll(kstr(svc, "metadata", "name"), "-", "_"))
	const ip = "10.96.0.10"
	out := map[string]string{name + "_SERVICE_HOST": ip}
	for i, p := range klist(svc, "spec", "ports") {
		port := fmt.Sprint(kget(p, "port"))
		proto := kstr(p, "protocol")
		if proto == "" {
			proto = "TCP"
		}
		if i == 0 {
			out[name+"_SERVICE_PORT"] = port
			out[name+"_PORT"] = strings.ToLower(proto) + "://" + ip + ":" + port
		}
		if pn := kstr(p, "name"); pn != "" {
			out[name+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(pn, "-", "_"))] = port
		}
		pre := name + "_PORT_" + port + "_" + proto
		out[pre] = strings.ToLower(proto) + "://" + ip + ":" + port
		out[pre+"_PROTO"] = strings.ToLower(proto)
		out[pre+"_PORT"] = port
		out[pre+"_ADDR"] = ip
	}
	return out
}
