package awserr

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyAdaptersReadSDKErrors: a package that imports smithy-go (to read
// the SDK's error types) is an adapter, one that calls an AWS service
// through an SDK service package; every other package reads AWS errors
// through this package.
func TestOnlyAdaptersReadSDKErrors(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "../...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		smithy, service := false, false
		for _, imp := range p.Imports {
			smithy = smithy || imp == "github.com/aws/smithy-go" || strings.HasPrefix(imp, "github.com/aws/smithy-go/")
			service = service || strings.HasPrefix(imp, "github.com/aws/aws-sdk-go-v2/service/")
		}
		if smithy && !service {
			t.Errorf("%s imports smithy-go but calls no AWS service: read AWS errors through awserr", p.ImportPath)
		}
	}
	if seen < 10 {
		t.Fatalf("go list saw %d packages: the check read nothing", seen)
	}
}
