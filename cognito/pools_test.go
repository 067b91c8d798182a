package cognito

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
)

type fakeDescriber struct {
	cfg  *ciptypes.UsernameConfigurationType
	err  error
	pool string
}

func (f *fakeDescriber) DescribeUserPool(_ context.Context, in *cip.DescribeUserPoolInput, _ ...func(*cip.Options)) (*cip.DescribeUserPoolOutput, error) {
	f.pool = aws.ToString(in.UserPoolId)
	if f.err != nil {
		return nil, f.err
	}
	return &cip.DescribeUserPoolOutput{UserPool: &ciptypes.UserPoolType{Id: in.UserPoolId, UsernameConfiguration: f.cfg}}, nil
}

// TestCaseSensitive: only a pool that says CaseSensitive false has
// usernames that are not; one without a UsernameConfiguration (the API's
// default) and one that cannot be described are taken as case-sensitive.
func TestCaseSensitive(t *testing.T) {
	const pool = "eu-west-1_AbC123"
	for _, c := range []struct {
		name string
		api  *fakeDescriber
		want bool
		err  bool
	}{
		{"not case-sensitive", &fakeDescriber{cfg: &ciptypes.UsernameConfigurationType{CaseSensitive: aws.Bool(false)}}, false, false},
		{"case-sensitive", &fakeDescriber{cfg: &ciptypes.UsernameConfigurationType{CaseSensitive: aws.Bool(true)}}, true, false},
		{"no configuration", &fakeDescriber{}, true, false},
		{"no value", &fakeDescriber{cfg: &ciptypes.UsernameConfigurationType{}}, true, false},
		{"no such pool", &fakeDescriber{err: &ciptypes.ResourceNotFoundException{Message: aws.String("no pool")}}, true, true},
	} {
		got, err := caseSensitive(t.Context(), c.api, pool)
		if got != c.want || (err != nil) != c.err || c.api.pool != pool {
			t.Errorf("%s: got %v, %v (pool %q); want %v, error %v", c.name, got, err, c.api.pool, c.want, c.err)
		}
		if err != nil && !strings.Contains(err.Error(), pool) {
			t.Errorf("%s: error %q does not name the pool", c.name, err)
		}
	}
}
