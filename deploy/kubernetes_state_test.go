package deploy

import (
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The worker's state folder (--state-dir, docs/pacing.md "Restarts"): where a
// worker without Redis records its own calls per minute, so that the
// container restarted in the same pod does not take them for real users'.
const (
	stateDirVar = "RESETQ_STATE_DIR"
	// stateDirMaxBytes bounds the emptyDir's sizeLimit: the record is a few
	// small JSON files, and the kubelet evicts a pod whose emptyDir outgrows
	// its limit.
	stateDirMaxBytes = 64 << 20
)

// TestStateDir: `resetq work --help` has --state-dir with the variable
// RESETQ_STATE_DIR, and every container running `resetq work`, in the base
// and every overlay, alone and with each component added, keeps a read-only
// root filesystem and sets RESETQ_STATE_DIR to the path of a writable mount
// of an emptyDir volume on the node's disk (it outlives a container's
// restart; on tmpfs it would count against the container's memory limit)
// with a small sizeLimit.
func TestStateDir(t *testing.T) {
	t.Parallel()
	if f, ok := commandHelp(t, "work")["state-dir"]; !ok || f.Env != stateDirVar {
		t.Fatalf("`resetq work --help` has no --state-dir with the variable %s (%+v)", stateDirVar, f)
	}
	for _, dir := range slices.Concat(allKustomizations(t), withComponent(t, poolRolesComponent)) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			n := 0
			resetqContainers(objs, func(_ k8sObject, pod, c any, name string) {
				if args := klist(c, "args"); args[0] != "work" {
					return
				}
				n++
				if kget(c, "securityContext", "readOnlyRootFilesystem") != true {
					t.Errorf("%s: readOnlyRootFilesystem is not true", name)
				}
				if err := checkStateDir(pod, c, containerEnv(objs, c)[stateDirVar]); err != "" {
					t.Errorf("%s: %s: %s", name, stateDirVar, err)
				}
			})
			if n == 0 {
				t.Fatal("no container runs `resetq work`")
			}
		})
	}
	// The check itself catches a worker left with the default, a path beside
	// the mount, and a mount made read-only.
	objs := kustomize(t, "kubernetes/base")
	pod := kget(podTemplate(knamed(objs, "Deployment", "resetq")), "spec")
	c := klist(pod, "containers")[0]
	dir := containerEnv(objs, c)[stateDirVar]
	for _, d := range []string{"", "/tmp/resetq-65532", path.Dir(dir) + "-beside", path.Dir(dir)} {
		if checkStateDir(pod, c, d) == "" {
			t.Errorf("checkStateDir takes %s=%q for the base's worker", stateDirVar, d)
		}
	}
	// A copy: the rendered objects are shared with the tests running beside.
	ro := maps.Clone(c.(map[string]any))
	var mounts []any
	for _, m := range klist(c, "volumeMounts") {
		m = maps.Clone(m.(map[string]any))
		if strings.HasPrefix(dir, kstr(m, "mountPath")+"/") {
			m.(map[string]any)["readOnly"] = true
		}
		mounts = append(mounts, m)
	}
	ro["volumeMounts"] = mounts
	if checkStateDir(pod, ro, dir) == "" {
		t.Errorf("checkStateDir takes a read-only mount at %s", dir)
	}
	if !strings.Contains(readFile(t, "README.md"), stateDirVar) {
		t.Errorf("README.md does not say %s", stateDirVar)
	}
}

// checkStateDir is what is wrong with dir as container c's state folder in
// pod ("" if nothing).
func checkStateDir(pod, c any, dir string) string {
	if !strings.HasPrefix(dir, "/") || path.Clean(dir) != dir {
		return "is " + strconv.Quote(dir) + ", want the clean absolute path of a folder in the emptyDir's mount (the default, /tmp/resetq-UID, is on the read-only root filesystem)"
	}
	// A folder inside the mount, not the mount itself: an emptyDir's root
	// belongs to root, and resetq takes only a folder of its own user
	// (it makes this one, 0700).
	var mount any
	for _, m := range klist(c, "volumeMounts") {
		if strings.HasPrefix(dir, path.Clean(kstr(m, "mountPath"))+"/") {
			mount = m
		}
	}
	if mount == nil {
		return dir + " is in no volume mount (want a folder inside the emptyDir's mount, not its root)"
	}
	if kget(mount, "readOnly") == true {
		return "the mount " + dir + " is readOnly"
	}
	if kstr(mount, "subPath") != "" || kstr(mount, "subPathExpr") != "" {
		return "the mount " + dir + " has a subPath"
	}
	var vol any
	for _, v := range klist(pod, "volumes") {
		if kstr(v, "name") == kstr(mount, "name") {
			vol = v
		}
	}
	ed, ok := kget(vol, "emptyDir").(map[string]any)
	if !ok {
		return "the volume " + strconv.Quote(kstr(mount, "name")) + " mounted at " + dir + " is not an emptyDir"
	}
	if m := kstr(ed, "medium"); m != "" {
		return "the emptyDir's medium is " + m + ", want the node's disk (tmpfs counts against the memory limit)"
	}
	limit := kstr(ed, "sizeLimit")
	if n, ok := quantityBytes(limit); !ok || n <= 0 || n > stateDirMaxBytes {
		return "the emptyDir's sizeLimit is " + strconv.Quote(limit) + ", want a small one (at most 64Mi)"
	}
	return ""
}

// quantityBytes is a Kubernetes quantity of bytes written as an integer with
// an optional binary or decimal suffix (16Mi, 20M, 1048576).
func quantityBytes(q string) (int64, bool) {
	for _, s := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"", 1}} {
		if num, ok := strings.CutSuffix(q, s.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			return n * s.mult, err == nil
		}
	}
	return 0, false
}
