package main

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// module is the import path of resetq's packages.
const module = "github.com/resetq/resetq"

// listed is a package as go list describes it.
type listed struct {
	ImportPath string
	Imports    []string
}

// goList runs go list -json with args in the module's root.
func goList(t *testing.T, args ...string) []listed {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Imports"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	var pkgs []listed
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list %v saw %d packages: the check read nothing", args, len(pkgs))
	}
	return pkgs
}

// TestBinaryLinksNoTools: internal/ holds what tests, demos and benchmarks
// the product (emulator launchers, stand-ins, the test environment); the
// binary links none of it.
func TestBinaryLinksNoTools(t *testing.T) {
	t.Parallel()
	product := 0
	for _, p := range goList(t, "-deps", "./cmd/resetq") {
		if !strings.HasPrefix(p.ImportPath, module+"/") {
			continue
		}
		product++
		if strings.Contains(p.ImportPath, "/internal/") {
			t.Errorf("the binary links %s: internal/ is for tools; a package the product needs lives at the top level", p.ImportPath)
		}
	}
	if product < 5 {
		t.Fatalf("the binary links %d of resetq's packages: the check read nothing", product)
	}
}

// TestOnlyAdaptersReadSDKErrors: a package that imports smithy-go (to read
// the SDK's error types) is an adapter, one that calls an AWS service
// through an SDK service package; every other package reads AWS errors
// through awserr.
func TestOnlyAdaptersReadSDKErrors(t *testing.T) {
	t.Parallel()
	for _, p := range goList(t, "./...") {
		smithy, service := false, false
		for _, imp := range p.Imports {
			smithy = smithy || imp == "github.com/aws/smithy-go" || strings.HasPrefix(imp, "github.com/aws/smithy-go/")
			service = service || strings.HasPrefix(imp, "github.com/aws/aws-sdk-go-v2/service/")
		}
		if smithy && !service {
			t.Errorf("%s imports smithy-go but calls no AWS service: read AWS errors through awserr", p.ImportPath)
		}
	}
}
