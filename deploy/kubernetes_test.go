package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// k8sObject is one rendered manifest, decoded from JSON.
type k8sObject = map[string]any

// kustomizations are the base and every overlay.
func kustomizations(t *testing.T) []string {
	t.Helper()
	overlays, err := filepath.Glob("kubernetes/overlays/*/kustomization.yaml")
	if err != nil || len(overlays) == 0 {
		t.Fatalf("no overlays found: %v", err)
	}
	dirs := []string{"kubernetes/base"}
	for _, o := range overlays {
		dirs = append(dirs, filepath.Dir(o))
	}
	return dirs
}

var rendered sync.Map // dir -> []k8sObject

// render runs `kubectl kustomize dir` and converts the YAML to JSON offline
// with `kubectl patch --local` (an empty merge patch), so no YAML library is
// needed.
func kustomize(t *testing.T, dir string) []k8sObject {
	t.Helper()
	needCLI(t, "kubectl", "kubectl with its built-in kustomize v5: https://kubernetes.io/docs/tasks/tools/")
	if objs, ok := rendered.Load(dir); ok {
		return objs.([]k8sObject)
	}
	yml, err := exec.Command("kubectl", "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, exitStderr(err))
	}
	objs := yamlToJSON(t, yml)
	rendered.Store(dir, objs)
	return objs
}

func yamlToJSON(t *testing.T, yml []byte) []k8sObject {
	t.Helper()
	cmd := exec.Command("kubectl", "patch", "--local", "-f", "-", "--type", "merge", "-p", "{}", "-o", "json")
	cmd.Stdin = bytes.NewReader(yml)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl patch --local (YAML to JSON): %v\n%s", err, exitStderr(err))
	}
	var objs []k8sObject
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode kubectl output: %v", err)
		}
		objs = append(objs, o)
	}
	if n := len(regexp.MustCompile(`(?m)^kind: `).FindAll(yml, -1)); len(objs) != n {
		t.Fatalf("converted %d objects, the YAML has %d", len(objs), n)
	}
	return objs
}

func exitStderr(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}

// get walks a decoded JSON object: kget(o, "spec", "template", "spec").
func kget(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func kstr(v any, path ...string) string { s, _ := kget(v, path...).(string); return s }
func klist(v any, path ...string) []any { l, _ := kget(v, path...).([]any); return l }
func kmap(v any, path ...string) map[string]string {
	out := map[string]string{}
	m, _ := kget(v, path...).(map[string]any)
	for k, v := range m {
		out[k], _ = v.(string)
	}
	return out
}

func kfind(objs []k8sObject, kind string) []k8sObject {
	var out []k8sObject
	for _, o := range objs {
		if o["kind"] == kind {
			out = append(out, o)
		}
	}
	return out
}

func knamed(objs []k8sObject, kind, name string) k8sObject {
	for _, o := range kfind(objs, kind) {
		if kstr(o, "metadata", "name") == name {
			return o
		}
	}
	return nil
}

// subset reports whether every label of sel is in labels.
func labelsMatch(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// TestKustomizeRenders: the base and every overlay build with kubectl's
// kustomize, alone and with the signed or the incident component.
func TestKustomizeRenders(t *testing.T) {
	t.Parallel()
	for _, dir := range allKustomizations(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if objs := kustomize(t, dir); len(objs) == 0 {
				t.Fatal("renders nothing")
			}
		})
	}
}

// podTemplate is a workload's pod template (Deployment, Job, CronJob).
func podTemplate(o k8sObject) any {
	if o["kind"] == "CronJob" {
		return kget(o, "spec", "jobTemplate", "spec", "template")
	}
	return kget(o, "spec", "template")
}

// TestKubernetesPods checks every workload of the base and every overlay,
// alone and with the signed or the incident component: no service links in
// the pod, the restricted security settings on every container, the flags and RESETQ_* variables of each container that
// runs `resetq enqueue`, and for each
// container that runs `resetq work`: resources, the metrics port, JSON logs,
// a grace period longer than the shutdown timeout, only RESETQ_* variables
// that are real flags, and (in a Deployment) both probes on the metrics port.
func TestKubernetesPods(t *testing.T) {
	t.Parallel()
	for _, dir := range allKustomizations(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			workers := 0
			for _, kind := range []string{"Deployment", "Job", "CronJob"} {
				for _, o := range kfind(objs, kind) {
					workers += checkPod(t, objs, o)
				}
			}
			if workers == 0 {
				t.Fatal("no container runs `resetq work`")
			}
		})
	}
}

func checkPod(t *testing.T, objs []k8sObject, o k8sObject) (workers int) {
	t.Helper()
	where := o["kind"].(string) + "/" + kstr(o, "metadata", "name")
	pod := kget(podTemplate(o), "spec")
	psc := kget(pod, "securityContext")
	// Service links would put RESETQ_SERVICE_HOST and the like (from the
	// Service resetq) in the pod, and resetq refuses an unknown RESETQ_*
	// variable with exit 2.
	if kget(pod, "enableServiceLinks") != false {
		t.Errorf("%s: enableServiceLinks is not false: the Service resetq's links (RESETQ_SERVICE_HOST, RESETQ_PORT, ...) would stop resetq with exit 2", where)
	}
	if sa := kstr(pod, "serviceAccountName"); sa == "" {
		t.Errorf("%s: no serviceAccountName", where)
	} else if arn := kmap(knamed(objs, "ServiceAccount", sa), "metadata", "annotations")["eks.amazonaws.com/role-arn"]; !strings.HasPrefix(arn, "arn:aws:iam::") {
		t.Errorf("%s: ServiceAccount %s has no IRSA annotation eks.amazonaws.com/role-arn (got %q)", where, sa, arn)
	}
	for _, c := range klist(pod, "containers") {
		name := where + " container " + kstr(c, "name")
		csc := kget(c, "securityContext")
		either := func(field string) any {
			if v := kget(csc, field); v != nil {
				return v
			}
			return kget(psc, field)
		}
		if either("runAsNonRoot") != true {
			t.Errorf("%s: runAsNonRoot is not true", name)
		}
		if uid, _ := either("runAsUser").(float64); uid != 65532 {
			t.Errorf("%s: runAsUser %v, want the numeric UID 65532", name, either("runAsUser"))
		}
		if kstr(either("seccompProfile"), "type") != "RuntimeDefault" {
			t.Errorf("%s: seccompProfile is not RuntimeDefault", name)
		}
		if kget(csc, "readOnlyRootFilesystem") != true {
			t.Errorf("%s: readOnlyRootFilesystem is not true", name)
		}
		if kget(csc, "allowPrivilegeEscalation") != false {
			t.Errorf("%s: allowPrivilegeEscalation is not false", name)
		}
		if !slices.Contains(klist(csc, "capabilities", "drop"), any("ALL")) {
			t.Errorf("%s: capabilities do not drop ALL", name)
		}
		for _, r := range []string{"requests", "limits"} {
			if kget(c, "resources", r, "cpu") == nil || kget(c, "resources", r, "memory") == nil {
				t.Errorf("%s: resources.%s lacks cpu or memory", name, r)
			}
		}
		args := klist(c, "args")
		if len(args) > 0 && args[0] == "enqueue" {
			checkEnqueue(t, c, name)
		}
		if len(args) == 0 || args[0] != "work" {
			continue
		}
		workers++
		checkWorker(t, objs, o, pod, c, name)
	}
	return workers
}

func checkWorker(t *testing.T, objs []k8sObject, o k8sObject, pod, c any, name string) {
	t.Helper()
	help := commandHelp(t, "work")
	twins := envNames(help)
	env := map[string]string{}
	for _, ef := range klist(c, "envFrom") {
		cmName := kstr(ef, "configMapRef", "name")
		cm := knamed(objs, "ConfigMap", cmName)
		if cm == nil {
			t.Errorf("%s: envFrom ConfigMap %q is not in the build", name, cmName)
			continue
		}
		maps.Copy(env, kmap(cm, "data"))
	}
	for _, e := range klist(c, "env") {
		env[kstr(e, "name")] = kstr(e, "value")
	}
	for k := range env {
		if strings.HasPrefix(k, "RESETQ_") && !twins[k] {
			t.Errorf("%s: sets %s, which is not a flag of `resetq work`", name, k)
		}
	}
	args := map[string]string{}
	al := klist(c, "args")
	for i := 1; i < len(al); i++ {
		a, _ := al[i].(string)
		f, v, hasV := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if _, ok := help[f]; !ok {
			t.Errorf("%s: argument %s is not a flag of `resetq work`", name, a)
		}
		if !hasV && i+1 < len(al) {
			v, _ = al[i+1].(string)
			i++
		}
		args[f] = v
	}
	setting := func(flag string) string {
		if v, ok := args[flag]; ok {
			return v
		}
		return env[help[flag].Env]
	}
	if setting("log-format") != "json" {
		t.Errorf("%s: log format %q, want json", name, setting("log-format"))
	}
	if env["RESETQ_QUEUE_URL"] == "" && args["queue-url"] == "" {
		t.Errorf("%s: no queue URL", name)
	}

	shutdown := 30 * time.Second // the flag's default
	if s := setting("shutdown-timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: shutdown timeout %q: %v", name, s, err)
		}
		shutdown = d
	}
	grace, ok := kget(pod, "terminationGracePeriodSeconds").(float64)
	if !ok {
		grace = 30 // Kubernetes' default
	}
	if time.Duration(grace)*time.Second <= shutdown {
		t.Errorf("%s: terminationGracePeriodSeconds %v is not above the shutdown timeout %v", name, grace, shutdown)
	}

	port := -1.0
	for _, p := range klist(c, "ports") {
		if kstr(p, "name") == "metrics" {
			port, _ = kget(p, "containerPort").(float64)
		}
	}
	if port != 9464 {
		t.Errorf("%s: no container port named metrics on 9464", name)
	}
	if a := setting("metrics-addr"); a != "" && !strings.HasSuffix(a, ":9464") {
		t.Errorf("%s: metrics address %q is not port 9464", name, a)
	}
	if o["kind"] != "Deployment" {
		return
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		hg := kget(c, probe, "httpGet")
		p := kget(hg, "port")
		if kstr(hg, "path") != path || (p != "metrics" && p != 9464.0) {
			t.Errorf("%s: %s is %v, want GET %s on port metrics (9464)", name, probe, hg, path)
		}
	}
}

// TestKubernetesMonitoring: in the base, the Service selects the worker pods
// and names its port metrics; the ServiceMonitor selects the Service by its
// labels and scrapes that port; the PodDisruptionBudget selects the pods; the
// PrometheusRule has rule groups.
func TestKubernetesMonitoring(t *testing.T) {
	t.Parallel()
	objs := kustomize(t, "kubernetes/base")
	dep := knamed(objs, "Deployment", "resetq")
	svc := knamed(objs, "Service", "resetq")
	sm := knamed(objs, "ServiceMonitor", "resetq")
	pdb := knamed(objs, "PodDisruptionBudget", "resetq")
	if dep == nil || svc == nil || sm == nil || pdb == nil {
		t.Fatalf("the base lacks a Deployment, Service, ServiceMonitor or PodDisruptionBudget named resetq")
	}
	if kstr(sm, "apiVersion") != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %q", kstr(sm, "apiVersion"))
	}
	podLabels := kmap(dep, "spec", "template", "metadata", "labels")
	if !labelsMatch(kmap(svc, "spec", "selector"), podLabels) {
		t.Errorf("Service selector %v does not select the pods %v", kmap(svc, "spec", "selector"), podLabels)
	}
	if !labelsMatch(kmap(pdb, "spec", "selector", "matchLabels"), podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pods %v", kmap(pdb, "spec", "selector", "matchLabels"), podLabels)
	}
	if !labelsMatch(kmap(sm, "spec", "selector", "matchLabels"), kmap(svc, "metadata", "labels")) {
		t.Errorf("ServiceMonitor selector %v does not select the Service's labels %v", kmap(sm, "spec", "selector", "matchLabels"), kmap(svc, "metadata", "labels"))
	}
	svcPorts := map[string]any{}
	for _, p := range klist(svc, "spec", "ports") {
		svcPorts[kstr(p, "name")] = kget(p, "targetPort")
	}
	if tp := svcPorts["metrics"]; tp != "metrics" && tp != 9464.0 {
		t.Errorf("Service has no port metrics targeting the container's metrics port: %v", svcPorts)
	}
	eps := klist(sm, "spec", "endpoints")
	if len(eps) == 0 {
		t.Fatal("ServiceMonitor has no endpoints")
	}
	for _, ep := range eps {
		if _, ok := svcPorts[kstr(ep, "port")]; !ok || kstr(ep, "port") != "metrics" {
			t.Errorf("ServiceMonitor endpoint port %q, want the Service's port metrics", kstr(ep, "port"))
		}
	}
	pr := kfind(objs, "PrometheusRule")
	if len(pr) != 1 || len(klist(pr[0], "spec", "groups")) == 0 {
		t.Errorf("want one PrometheusRule with rule groups, got %d", len(pr))
	}
}

// TestKEDAOverlay: the ScaledObject scales the worker Deployment from zero on
// the queue the worker reads, and maxReplicaCount x each rate (RESETQ_RATE,
// and the sign-out, re-invitation and status-check rates) stays within the
// single-worker default (each replica paces on its own).
func TestKEDAOverlay(t *testing.T) {
	t.Parallel()
	objs := kustomize(t, "kubernetes/overlays/keda")
	so := knamed(objs, "ScaledObject", "resetq")
	dep := knamed(objs, "Deployment", "resetq")
	if so == nil || dep == nil {
		t.Fatal("no ScaledObject or Deployment named resetq")
	}
	if kstr(so, "apiVersion") != "keda.sh/v1alpha1" || kstr(so, "spec", "scaleTargetRef", "name") != "resetq" {
		t.Errorf("ScaledObject %s targets %q", kstr(so, "apiVersion"), kstr(so, "spec", "scaleTargetRef", "name"))
	}
	if kget(dep, "spec", "replicas") != nil {
		t.Error("the Deployment sets replicas: KEDA owns the count")
	}
	if mn, _ := kget(so, "spec", "minReplicaCount").(float64); mn != 0 {
		t.Errorf("minReplicaCount %v, want 0", mn)
	}
	maxR, _ := kget(so, "spec", "maxReplicaCount").(float64)
	c := klist(dep, "spec", "template", "spec", "containers")[0]
	cm := knamed(objs, "ConfigMap", kstr(klist(c, "envFrom")[0], "configMapRef", "name"))
	env := kmap(cm, "data")
	// Each replica paces each call on its own: N replicas make N times each
	// rate, which must stay within what one worker makes by default (the
	// flag's default in `resetq work --help`, a share of the call's quota).
	help := commandHelp(t, "work")
	for _, name := range []string{"RESETQ_RATE", "RESETQ_SIGN_OUT_RATE", "RESETQ_REINVITE_RATE", "RESETQ_STATUS_CHECK_RATE"} {
		flag, f, ok := flagOf(help, name)
		def, err := strconv.ParseFloat(f.Default, 64)
		if !ok || f.Type != "float" || err != nil {
			t.Errorf("no float flag with a default and the variable %s in `resetq work --help` (%s: %+v)", name, flag, f)
			continue
		}
		rate, err := strconv.ParseFloat(env[name], 64)
		if err != nil {
			t.Errorf("%s %q: %v (unset, each of %v replicas would make the default %v: %v in all)", name, env[name], err, maxR, def, maxR*def)
			continue
		}
		if maxR < 1 || maxR*rate > def {
			t.Errorf("maxReplicaCount %v x %s %v = %v calls/s per Region, above the single-worker default %v", maxR, name, rate, maxR*rate, def)
		}
	}
	triggers := klist(so, "spec", "triggers")
	if len(triggers) != 1 || kstr(triggers[0], "type") != "aws-sqs-queue" {
		t.Fatalf("want one aws-sqs-queue trigger, got %v", triggers)
	}
	md := kmap(triggers[0], "metadata")
	if q := md["queueURLFromEnv"]; q != "RESETQ_QUEUE_URL" || env[q] == "" {
		if md["queueURL"] != env["RESETQ_QUEUE_URL"] {
			t.Errorf("the trigger's queue (%v) is not the worker's RESETQ_QUEUE_URL %q", md, env["RESETQ_QUEUE_URL"])
		}
	}
	auth := kstr(triggers[0], "authenticationRef", "name")
	ta := knamed(objs, "TriggerAuthentication", auth)
	if md["identityOwner"] == "" && (ta == nil || kstr(ta, "spec", "podIdentity", "provider") != "aws") {
		t.Errorf("the trigger has neither identityOwner nor a TriggerAuthentication with AWS pod identity (%q)", auth)
	}
}

// TestRotationOverlay: the CronJob runs `resetq enqueue` with its flags only.
func TestRotationOverlay(t *testing.T) {
	t.Parallel()
	objs := kustomize(t, "kubernetes/overlays/rotation")
	cjs := kfind(objs, "CronJob")
	if len(cjs) != 1 {
		t.Fatalf("%d CronJobs, want 1", len(cjs))
	}
	if knamed(objs, "Deployment", "resetq") == nil {
		t.Error("the rotation overlay lacks the worker Deployment that drains the queue")
	}
	c := klist(kget(podTemplate(cjs[0]), "spec"), "containers")[0]
	args := klist(c, "args")
	if len(args) == 0 || args[0] != "enqueue" {
		t.Fatalf("the CronJob runs %v, want resetq enqueue", args)
	}
	checkEnqueue(t, c, "the CronJob")
}

// checkEnqueue: every flag a container running `resetq enqueue` passes, and
// every RESETQ_* variable it sets, is a flag of `resetq enqueue --help`.
func checkEnqueue(t *testing.T, c any, name string) {
	t.Helper()
	help := commandHelp(t, "enqueue")
	twins := envNames(help)
	for _, a := range klist(c, "args")[1:] {
		s, _ := a.(string)
		if f, ok := strings.CutPrefix(s, "--"); ok {
			if f, _, _ = strings.Cut(f, "="); help[f].Env == "" {
				t.Errorf("%s passes %s, which `resetq enqueue --help` does not list", name, s)
			}
		}
	}
	for _, e := range klist(c, "env") {
		if v := kstr(e, "name"); strings.HasPrefix(v, "RESETQ_") && !twins[v] {
			t.Errorf("%s sets %s, which is not the variable of a flag of `resetq enqueue`", name, v)
		}
	}
}

// TestPrometheusRuleGenerated: the PrometheusRule of the base is exactly what
// the generator makes of deploy/prometheus/rules.yml (run `make generate`).
func TestPrometheusRuleGenerated(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("prometheus/rules.yml"); err != nil {
		t.Fatalf("deploy/prometheus/rules.yml: %v", err)
	}
	cmd := exec.Command("go", "run", "./internal/tools/promrule", "-out", "-")
	cmd.Dir = ".."
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run ./internal/tools/promrule: %v\n%s", err, exitStderr(err))
	}
	got, err := os.ReadFile("kubernetes/base/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("deploy/kubernetes/base/prometheusrule.yaml is out of date with deploy/prometheus/rules.yml: run `make generate`")
	}
}

// TestPromruleGenerator: the generator's manifest, read back as YAML, holds
// the rules file's groups unchanged, multi-line expressions included; a file
// with another top-level key is refused.
func TestPromruleGenerator(t *testing.T) {
	t.Parallel()
	needCLI(t, "kubectl", "kubectl with its built-in kustomize v5")
	dir := t.TempDir()
	rules := "# a comment\ngroups:\n  - name: g1\n    rules:\n      - alert: A\n        expr: |\n          sum(rate(x[5m]))\n            > 0\n        for: 5m\n        labels:\n          severity: page\n        annotations:\n          summary: \"a: b\"\n\n      - record: r:x\n        expr: x\n"
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	gen := func(args ...string) ([]byte, error) {
		cmd := exec.Command("go", append([]string{"run", "./internal/tools/promrule"}, args...)...)
		cmd.Dir = ".."
		return cmd.Output()
	}
	out, err := gen("-rules", filepath.Join(dir, "rules.yml"), "-out", "-", "-name", "x")
	if err != nil {
		t.Fatalf("generator: %v\n%s", err, exitStderr(err))
	}
	objs := yamlToJSON(t, out)
	if len(objs) != 1 || objs[0]["kind"] != "PrometheusRule" || kstr(objs[0], "metadata", "name") != "x" {
		t.Fatalf("generated %v", objs)
	}
	groups := klist(objs[0], "spec", "groups")
	rs := klist(groups[0], "rules")
	if len(groups) != 1 || kstr(groups[0], "name") != "g1" || len(rs) != 2 {
		t.Fatalf("groups %v", groups)
	}
	if kstr(rs[0], "expr") != "sum(rate(x[5m]))\n  > 0\n" || kstr(rs[0], "annotations", "summary") != "a: b" || kstr(rs[1], "record") != "r:x" {
		t.Errorf("rules changed on the way: %v", rs)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.yml"), []byte("groups: []\nextra: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := gen("-rules", filepath.Join(dir, "bad.yml"), "-out", "-"); err == nil {
		t.Error("a rules file with another top-level key was accepted")
	}
}

// signedComponent is the kustomize Component that turns signed jobs on
// (README, "Signed jobs"), and signingSecret the Secret it mounts, which the
// operator creates: no key is committed.
const (
	signedComponent = "kubernetes/components/signed"
	signingSecret   = "resetq-signing-keys"
)

// includesSigned reports whether dir's kustomization lists the signed
// component (a commented-out line does not count).
func includesSigned(t *testing.T, dir string) bool {
	t.Helper()
	return includesComponent(t, dir, signedComponent)
}

// includesComponent reports whether dir's kustomization lists the component
// comp (a commented-out line does not count).
func includesComponent(t *testing.T, dir, comp string) bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^\s*-\s*(\.\./)+components/` + regexp.QuoteMeta(filepath.Base(comp)) + `/?\s*$`).Match(raw)
}

// signedKustomizations are the base and every overlay that does not include
// the signed component, each with it added (withComponent).
func signedKustomizations(t *testing.T) []string {
	t.Helper()
	return withComponent(t, signedComponent)
}

// allKustomizations are the base and every overlay, alone and with each
// component added (but redis-ca, which needs a Redis URL).
func allKustomizations(t *testing.T) []string {
	t.Helper()
	return slices.Concat(kustomizations(t), signedKustomizations(t), withComponent(t, incidentComponent), withComponent(t, elasticacheComponent))
}

// withComponent is the base and every overlay that does not include the
// component comp, each with it added: a kustomization in a temporary folder
// whose resource is the original and whose component is comp, both by
// relative paths (kustomize refuses absolute ones). This is what an operator
// does to add it to that overlay.
func withComponent(t *testing.T, component string) []string {
	t.Helper()
	comp, err := filepath.Abs(component)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(comp, "kustomization.yaml")); err != nil {
		t.Fatalf("the component %s: %v", component, err)
	}
	root := t.TempDir()
	var dirs []string
	for _, dir := range kustomizations(t) {
		if includesComponent(t, dir, component) {
			continue
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(root, filepath.Base(dir)+"+"+filepath.Base(component))
		if err := os.Mkdir(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		res, err1 := filepath.Rel(tmp, abs)
		cmp, err2 := filepath.Rel(tmp, comp)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + res + "\ncomponents:\n  - " + cmp + "\n"
		if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, tmp)
	}
	if len(dirs) == 0 {
		t.Fatalf("every kustomization already includes %s: none to add it to", component)
	}
	return dirs
}

// containerEnv is the environment a container gets from its ConfigMaps
// (envFrom) and its env (literal values and ConfigMap keys).
func containerEnv(objs []k8sObject, c any) map[string]string {
	env := map[string]string{}
	for _, ef := range klist(c, "envFrom") {
		maps.Copy(env, kmap(knamed(objs, "ConfigMap", kstr(ef, "configMapRef", "name")), "data"))
	}
	for _, e := range klist(c, "env") {
		v := kstr(e, "value")
		if ref := kget(e, "valueFrom", "configMapKeyRef"); ref != nil {
			v = kmap(knamed(objs, "ConfigMap", kstr(ref, "name")), "data")[kstr(ref, "key")]
		}
		env[kstr(e, "name")] = v
	}
	return env
}

// resetqContainers calls f for each container of the build that runs
// `resetq work` or `resetq enqueue`, with its pod spec.
func resetqContainers(objs []k8sObject, f func(o k8sObject, pod, c any, name string)) {
	for _, kind := range []string{"Deployment", "Job", "CronJob"} {
		for _, o := range kfind(objs, kind) {
			pod := kget(podTemplate(o), "spec")
			for _, c := range klist(pod, "containers") {
				if args := klist(c, "args"); len(args) > 0 && (args[0] == "work" || args[0] == "enqueue") {
					f(o, pod, c, kind+"/"+kstr(o, "metadata", "name")+" container "+kstr(c, "name"))
				}
			}
		}
	}
}

// signingMount checks that the container's RESETQ_SIGNING_KEY_FILE is the
// file that the Secret's item `keys` puts in a read-only mount, readable by
// the container's user and by nobody else, and returns the Secret's name and
// key (empty after an error).
func signingMount(t *testing.T, objs []k8sObject, pod, c any, name string) (secret, key string) {
	file := containerEnv(objs, c)["RESETQ_SIGNING_KEY_FILE"]
	if !strings.HasPrefix(file, "/") {
		t.Errorf("%s: RESETQ_SIGNING_KEY_FILE is %q, want the absolute path of the mounted key file", name, file)
		return "", ""
	}
	// The mount the file is under: the longest mount path that holds it.
	var mount any
	for _, m := range klist(c, "volumeMounts") {
		mp := strings.TrimSuffix(kstr(m, "mountPath"), "/")
		if (file == mp || strings.HasPrefix(file, mp+"/")) && len(mp) > len(strings.TrimSuffix(kstr(mount, "mountPath"), "/")) {
			mount = m
		}
	}
	if mount == nil {
		t.Errorf("%s: RESETQ_SIGNING_KEY_FILE %s is on no volume mount (mounts: %v)", name, file, klist(c, "volumeMounts"))
		return "", ""
	}
	if kget(mount, "readOnly") != true {
		t.Errorf("%s: the mount %s of the signing keys is not readOnly", name, kstr(mount, "mountPath"))
	}
	var vol any
	for _, v := range klist(pod, "volumes") {
		if kstr(v, "name") == kstr(mount, "name") {
			vol = v
		}
	}
	sec := kget(vol, "secret")
	if sec == nil {
		t.Errorf("%s: the volume %q holding RESETQ_SIGNING_KEY_FILE is not a Secret volume: %v", name, kstr(mount, "name"), vol)
		return "", ""
	}
	if kget(sec, "optional") == true {
		t.Errorf("%s: the signing keys' Secret volume is optional: without the Secret the pod would start and fail, instead of waiting for it", name)
	}
	// The file's path inside the volume.
	inVol := strings.TrimPrefix(strings.TrimPrefix(file, strings.TrimSuffix(kstr(mount, "mountPath"), "/")), "/")
	if sp := kstr(mount, "subPath"); sp != "" {
		inVol = strings.Trim(sp+"/"+inVol, "/")
	}
	mode, hasMode := kget(sec, "defaultMode").(float64)
	key = inVol // without items, each key of the Secret is a file of its name
	if items := klist(sec, "items"); len(items) > 0 {
		key = ""
		for _, it := range items {
			if kstr(it, "path") == inVol {
				key = kstr(it, "key")
				if m, ok := kget(it, "mode").(float64); ok {
					mode, hasMode = m, true
				}
			}
		}
		if key == "" {
			t.Errorf("%s: no item of the Secret volume puts a file at %s (items %v)", name, file, items)
			return "", ""
		}
	}
	if !hasMode {
		mode = 0o644 // Kubernetes' default
	}
	perm := int(mode)
	if perm&^0o440 != 0 {
		t.Errorf("%s: the signing key file's mode is %#o: want at most 0440 (read for its owner and group, nothing for others, no writes)", name, perm)
	}
	// Kubernetes writes a Secret's files as root, in group fsGroup when the
	// pod sets one (and then adds the group's read bit). The container reads
	// as its runAsUser with its runAsGroup, fsGroup and supplementalGroups.
	psc := kget(pod, "securityContext")
	csc := kget(c, "securityContext")
	either := func(field string) (float64, bool) {
		if v, ok := kget(csc, field).(float64); ok {
			return v, true
		}
		v, ok := kget(psc, field).(float64)
		return v, ok
	}
	uid, _ := either("runAsUser")
	gid, hasGID := either("runAsGroup")
	var groups []float64
	if hasGID {
		groups = append(groups, gid)
	}
	fileGroup := 0.0
	if fg, ok := kget(psc, "fsGroup").(float64); ok {
		fileGroup = fg
		groups = append(groups, fg)
	}
	for _, g := range klist(psc, "supplementalGroups") {
		if g, ok := g.(float64); ok {
			groups = append(groups, g)
		}
	}
	readable := (uid == 0 && perm&0o400 != 0) || (slices.Contains(groups, fileGroup) && perm&0o040 != 0) || perm&0o004 != 0
	if !readable {
		t.Errorf("%s: UID %v (groups %v) cannot read the signing key file, root's and group %v's with mode %#o: set the pod's fsGroup to the container's group and give the group read", name, uid, groups, fileGroup, perm)
	}
	return kstr(sec, "secretName"), key
}

// TestSignedJobs: with the signed component (overlays/signed, and the base
// and each other overlay with the component added), every container running
// `resetq work` or `resetq enqueue` (the rotation producer too, so that it
// signs what the workers verify) reads RESETQ_SIGNING_KEY_FILE from the item
// `keys` of the Secret resetq-signing-keys, mounted read-only, readable by
// its non-root user and by nobody else; the build holds no Secret (the
// operator creates it, as the component and deploy/README.md say). Without
// the component, nothing mounts the Secret or sets RESETQ_SIGNING_KEY_FILE.
func TestSignedJobs(t *testing.T) {
	t.Parallel()
	var signed []string
	for _, dir := range kustomizations(t) {
		if includesSigned(t, dir) {
			signed = append(signed, dir)
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			resetqContainers(objs, func(o k8sObject, pod, c any, name string) {
				if f := containerEnv(objs, c)["RESETQ_SIGNING_KEY_FILE"]; f != "" {
					t.Errorf("%s: sets RESETQ_SIGNING_KEY_FILE=%s without the signed component", name, f)
				}
				for _, v := range klist(pod, "volumes") {
					if kstr(v, "secret", "secretName") == signingSecret {
						t.Errorf("%s: mounts the Secret %s without the signed component", name, signingSecret)
					}
				}
			})
		})
	}
	if len(signed) == 0 {
		t.Errorf("no overlay includes %s", signedComponent)
	}
	type secretKey struct{ secret, key string }
	used := map[secretKey]bool{}
	var mu sync.Mutex
	for _, dir := range append(signed, signedKustomizations(t)...) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			if s := kfind(objs, "Secret"); len(s) > 0 {
				t.Errorf("the build holds %d Secret(s): no key may be committed, the operator creates %s", len(s), signingSecret)
			}
			var cmds []string
			resetqContainers(objs, func(o k8sObject, pod, c any, name string) {
				cmds = append(cmds, klist(c, "args")[0].(string))
				secret, key := signingMount(t, objs, pod, c, name)
				if secret == "" {
					return
				}
				if secret != signingSecret || key != "keys" {
					t.Errorf("%s: reads the signing keys from key %q of Secret %q, want key keys of %s", name, key, secret, signingSecret)
				}
				mu.Lock()
				used[secretKey{secret, key}] = true
				mu.Unlock()
			})
			if !slices.Contains(cmds, "work") && !slices.Contains(cmds, "enqueue") {
				t.Fatal("no container runs resetq work or enqueue")
			}
		})
	}
	// The command creating the Secret, as the component and deploy/README.md give it.
	for sk := range used {
		cmd := "kubectl create secret generic " + sk.secret + " --from-file=" + sk.key + "="
		for _, f := range []string{signedComponent + "/kustomization.yaml", "README.md"} {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(raw, []byte(cmd)) {
				t.Errorf("%s does not say how to create the Secret: %q", f, cmd+"...")
			}
		}
	}
}

// incidentComponent is the kustomize Component that runs the workers in
// incident mode, and incidentSettings the settings it makes: the RESETQ_*
// twin of --incident, which stands for --kill-password --global-sign-out
// --reinvite --unreachable disable (incidentExpands: their twins, which it
// leaves to --incident, so that none can disagree with it).
const incidentComponent = "kubernetes/components/incident"

var incidentSettings = map[string]string{
	"RESETQ_INCIDENT": "true",
}

var incidentExpands = []string{"RESETQ_KILL_PASSWORD", "RESETQ_GLOBAL_SIGN_OUT", "RESETQ_REINVITE", "RESETQ_UNREACHABLE"}

// TestIncidentMode: with the incident component (overlays/incident, and the
// base and each other overlay with the component added), every container
// running `resetq work` gets incidentSettings, each a flag of `resetq work
// --help` that lists the value, and none of the settings --incident stands
// for (incidentExpands); --incident's usage names each of them. Without the
// component, no worker sets any of them (incident mode, and the IAM actions
// it needs, are opt-in). The component says which IAM policies the worker's
// role then needs. (TestContainersAcceptTheirSettings runs each build's
// workers: resetq itself accepts what they set.)
func TestIncidentMode(t *testing.T) {
	t.Parallel()
	help := commandHelp(t, "work")
	for name, value := range incidentSettings {
		flag, f, ok := flagOf(help, name)
		switch {
		case !ok:
			t.Errorf("%s: `resetq work --help` has no flag with this variable", name)
		case value != "true" && !strings.Contains(f.Usage, value):
			t.Errorf("%s=%s: the usage of --%s does not name %q:\n%s", name, value, flag, value, f.Usage)
		}
	}
	incidentUsage := help["incident"].Usage
	for _, name := range incidentExpands {
		flag, _, ok := flagOf(help, name)
		if !ok || !strings.Contains(incidentUsage, "--"+flag) {
			t.Errorf("%s: not the variable of a flag of `resetq work`, or --incident's usage does not say it turns --%s on: %s", name, flag, incidentUsage)
		}
	}
	var with []string
	for _, dir := range kustomizations(t) {
		if includesComponent(t, dir, incidentComponent) {
			with = append(with, dir)
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			resetqContainers(objs, func(o k8sObject, pod, c any, name string) {
				env := containerEnv(objs, c)
				for _, k := range slices.Concat(slices.Collect(maps.Keys(incidentSettings)), incidentExpands) {
					if v, ok := env[k]; ok {
						t.Errorf("%s: sets %s=%s without the incident component", name, k, v)
					}
				}
			})
		})
	}
	if !slices.Contains(with, "kubernetes/overlays/incident") {
		t.Errorf("overlays/incident does not include %s (kustomizations with it: %v)", incidentComponent, with)
	}
	for _, dir := range append(with, withComponent(t, incidentComponent)...) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := kustomize(t, dir)
			workers := 0
			resetqContainers(objs, func(o k8sObject, pod, c any, name string) {
				if klist(c, "args")[0] != "work" {
					return
				}
				workers++
				env := containerEnv(objs, c)
				for k, want := range incidentSettings {
					if env[k] != want {
						t.Errorf("%s: %s=%q, want %q", name, k, env[k], want)
					}
				}
				for _, k := range incidentExpands {
					if v, ok := env[k]; ok {
						t.Errorf("%s: sets %s=%s beside RESETQ_INCIDENT: leave it to --incident", name, k, v)
					}
				}
			})
			if workers == 0 {
				t.Fatal("no container runs resetq work")
			}
		})
	}
	raw := readFile(t, incidentComponent+"/kustomization.yaml")
	wants := []string{"iam/worker-incident-policy.json"}
	for _, out := range incidentOutputs {
		wants = append(wants, out)
	}
	for _, want := range wants {
		if !strings.Contains(raw, want) {
			t.Errorf("%s/kustomization.yaml does not name %s: say which permissions incident mode needs", incidentComponent, want)
		}
	}
}

// The ElastiCache component (a fleet sharing one limit in Redis), the
// Secret whose key url holds RESETQ_REDIS_URL, and the private-CA component
// with its ConfigMap; the operator creates both.
const (
	elasticacheComponent = "kubernetes/components/elasticache"
	redisSecret          = "resetq-redis"
	redisCAComponent     = "kubernetes/components/redis-ca"
	redisCAConfigMap     = "resetq-redis-ca"
)

// withComponents is dir with comps added, in a temporary kustomization.
func withComponents(t *testing.T, dir string, comps ...string) string {
	t.Helper()
	tmp := t.TempDir()
	rel := func(p string) string {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(tmp, abs)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + rel(dir) + "\ncomponents:\n"
	for _, c := range comps {
		k += "  - " + rel(c) + "\n"
	}
	if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return tmp
}

// redisURLFrom checks that a container takes RESETQ_REDIS_URL from a
// required Secret key, never a literal or a ConfigMap (it holds the ACL
// user's password), and returns the Secret and key ("" when it sets none).
func redisURLFrom(t *testing.T, objs []k8sObject, c any, name string) (secret, key string) {
	t.Helper()
	for _, ef := range klist(c, "envFrom") {
		if _, ok := kmap(knamed(objs, "ConfigMap", kstr(ef, "configMapRef", "name")), "data")["RESETQ_REDIS_URL"]; ok {
			t.Errorf("%s: RESETQ_REDIS_URL in the ConfigMap %s: the password would be in it", name, kstr(ef, "configMapRef", "name"))
		}
		if kget(ef, "secretRef") != nil {
			t.Errorf("%s: envFrom a Secret: name the one key instead", name)
		}
	}
	for _, e := range klist(c, "env") {
		if kstr(e, "name") != "RESETQ_REDIS_URL" {
			continue
		}
		ref := kget(e, "valueFrom", "secretKeyRef")
		if ref == nil || kget(e, "value") != nil {
			t.Errorf("%s: RESETQ_REDIS_URL is %v, want valueFrom.secretKeyRef", name, e)
			return "", ""
		}
		if kget(ref, "optional") == true {
			t.Errorf("%s: RESETQ_REDIS_URL's Secret is optional: without it the worker would pace alone at the fleet's --rate", name)
		}
		return kstr(ref, "name"), kstr(ref, "key")
	}
	return "", ""
}

// TestElastiCacheFleet: overlays/elasticache runs RESETQ_FLEET_SIZE
// replicas (more than one, no surge) that share the fleet's RESETQ_RATE in
// ElastiCache Serverless: each reads RESETQ_REDIS_URL from the key url of
// the Secret resetq-redis and runs in cluster mode; the fleet's rates (every
// call's, all shared in Redis) stay within their flags' defaults. The component does the same to the batch Job and to every
// other build it is added to; no build without it sets a Redis URL, and no
// build holds a Secret. With redis-ca, RESETQ_REDIS_CA_FILE is the ConfigMap
// resetq-redis-ca's ca.pem, mounted read-only.
func TestElastiCacheFleet(t *testing.T) {
	t.Parallel()
	help := commandHelp(t, "work")
	flagDefault := func(env string) float64 {
		_, f, _ := flagOf(help, env)
		v, err := strconv.ParseFloat(f.Default, 64)
		if (f.Type != "float" && f.Type != "int") || err != nil {
			t.Fatalf("no numeric default of %s's flag in `resetq work --help`: %+v", env, f)
		}
		return v
	}
	objs := kustomize(t, "kubernetes/overlays/elasticache")
	dep := knamed(objs, "Deployment", "resetq")
	if dep == nil {
		t.Fatal("no Deployment resetq")
	}
	c := klist(dep, "spec", "template", "spec", "containers")[0]
	env := containerEnv(objs, c)
	if secret, key := redisURLFrom(t, objs, c, "Deployment/resetq"); secret != redisSecret || key != "url" {
		t.Errorf("RESETQ_REDIS_URL from key %q of Secret %q, want key url of %s", key, secret, redisSecret)
	}
	if env["RESETQ_REDIS_CLUSTER"] != "true" {
		t.Errorf("RESETQ_REDIS_CLUSTER=%q: ElastiCache Serverless is a cluster", env["RESETQ_REDIS_CLUSTER"])
	}
	replicas, _ := kget(dep, "spec", "replicas").(float64)
	fleet, err := strconv.ParseFloat(env["RESETQ_FLEET_SIZE"], 64)
	if err != nil || fleet != replicas || replicas < 2 {
		t.Errorf("replicas %v, RESETQ_FLEET_SIZE %q: want the same count, above 1", replicas, env["RESETQ_FLEET_SIZE"])
	}
	if s := kget(dep, "spec", "strategy", "rollingUpdate", "maxSurge"); s != 0.0 && s != "0" && s != "0%" {
		t.Errorf("maxSurge %v: a rollout would run more replicas than RESETQ_FLEET_SIZE", s)
	}
	for _, name := range []string{"RESETQ_RATE", "RESETQ_STATUS_CHECK_RATE", "RESETQ_SIGN_OUT_RATE", "RESETQ_REINVITE_RATE"} {
		def := flagDefault(name)
		rate, err := strconv.ParseFloat(env[name], 64)
		if err != nil {
			rate = def
		}
		if rate > def { // shared in Redis: the fleet's
			t.Errorf("%s=%v calls/s per Region for the fleet, above the single-worker default %v", name, rate, def)
		}
	}

	// The component on every build it is added to, and nothing without it.
	// Temporary builds are named after what they combine: batch+elasticache.
	batch := withComponents(t, "kubernetes/overlays/batch", elasticacheComponent)
	for _, dir := range append(allKustomizations(t), batch) {
		objs := kustomize(t, dir)
		with := dir == batch || strings.Contains(filepath.Base(dir), "elasticache")
		if s := kfind(objs, "Secret"); len(s) > 0 {
			t.Errorf("%s: the build holds %d Secret(s): the operator creates %s", dir, len(s), redisSecret)
		}
		workers := 0
		resetqContainers(objs, func(o k8sObject, pod, c any, name string) {
			secret, _ := redisURLFrom(t, objs, c, dir+": "+name)
			if klist(c, "args")[0] != "work" {
				if secret != "" {
					t.Errorf("%s: %s sets RESETQ_REDIS_URL", dir, name)
				}
				return
			}
			workers++
			if with != (secret == redisSecret) {
				t.Errorf("%s: %s takes RESETQ_REDIS_URL from Secret %q (component added: %v)", dir, name, secret, with)
			}
			if f := containerEnv(objs, c)["RESETQ_REDIS_CA_FILE"]; f != "" {
				t.Errorf("%s: %s sets RESETQ_REDIS_CA_FILE=%s without %s", dir, name, f, redisCAComponent)
			}
		})
		if workers == 0 {
			t.Errorf("%s: no container runs resetq work", dir)
		}
	}

	// A private CA.
	objs = kustomize(t, withComponents(t, "kubernetes/overlays/elasticache", redisCAComponent))
	resetqContainers(objs, func(o k8sObject, pod, c any, name string) {
		file := containerEnv(objs, c)["RESETQ_REDIS_CA_FILE"]
		dir, base := filepath.Split(file)
		var mount, vol any
		for _, m := range klist(c, "volumeMounts") {
			if strings.TrimSuffix(kstr(m, "mountPath"), "/")+"/" == dir {
				mount = m
			}
		}
		for _, v := range klist(pod, "volumes") {
			if mount != nil && kstr(v, "name") == kstr(mount, "name") {
				vol = v
			}
		}
		items := klist(vol, "configMap", "items")
		if mount == nil || kget(mount, "readOnly") != true || kstr(vol, "configMap", "name") != redisCAConfigMap ||
			len(items) != 1 || kstr(items[0], "key") != "ca.pem" || kstr(items[0], "path") != base {
			t.Errorf("%s: RESETQ_REDIS_CA_FILE=%q is not ca.pem of the ConfigMap %s, mounted read-only (mount %v, volume %v)", name, file, redisCAConfigMap, mount, vol)
		}
	})

	// How to create what the build lacks, where an operator reads it.
	for f, want := range map[string]string{
		elasticacheComponent + "/kustomization.yaml": "kubectl create secret generic " + redisSecret + " --from-literal=url='rediss://",
		redisCAComponent + "/kustomization.yaml":     "kubectl create configmap " + redisCAConfigMap + " --from-file=ca.pem=",
		runbookFile:                                  "kubectl create secret generic " + redisSecret + " --from-literal=url=",
	} {
		if !strings.Contains(readFile(t, f), want) {
			t.Errorf("%s does not say how to create it: %q", f, want+"...")
		}
	}
}
