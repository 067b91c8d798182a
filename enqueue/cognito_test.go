package enqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/resetq/resetq/cognito"
)

// fakeLister serves n users in pages of Limit, throttling the calls whose
// number is in throttle.
type fakeLister struct {
	n        int
	throttle map[int]bool
	calls    int
	tokens   []string // token of each call
	filter   string
	group    string
	fail     error
}

func (f *fakeLister) serve(limit int32, token *string) ([]ciptypes.UserType, *string, error) {
	f.calls++
	f.tokens = append(f.tokens, aws.ToString(token))
	if f.fail != nil {
		return nil, nil, f.fail
	}
	if f.throttle[f.calls] {
		return nil, nil, &ciptypes.TooManyRequestsException{Message: aws.String("Rate exceeded")}
	}
	start, _ := strconv.Atoi(aws.ToString(token))
	var users []ciptypes.UserType
	for i := start; i < f.n && i < start+int(limit); i++ {
		users = append(users, ciptypes.UserType{Username: aws.String(fmt.Sprintf("u%03d", i))})
	}
	var next *string
	if start+int(limit) < f.n {
		next = aws.String(strconv.Itoa(start + int(limit)))
	}
	return users, next, nil
}

func (f *fakeLister) ListUsers(_ context.Context, in *cip.ListUsersInput, _ ...func(*cip.Options)) (*cip.ListUsersOutput, error) {
	f.filter = aws.ToString(in.Filter)
	u, next, err := f.serve(aws.ToInt32(in.Limit), in.PaginationToken)
	if err != nil {
		return nil, err
	}
	return &cip.ListUsersOutput{Users: u, PaginationToken: next}, nil
}

func (f *fakeLister) ListUsersInGroup(_ context.Context, in *cip.ListUsersInGroupInput, _ ...func(*cip.Options)) (*cip.ListUsersInGroupOutput, error) {
	f.group = aws.ToString(in.GroupName)
	u, next, err := f.serve(aws.ToInt32(in.Limit), in.NextToken)
	if err != nil {
		return nil, err
	}
	return &cip.ListUsersInGroupOutput{Users: u, NextToken: next}, nil
}

type fakePacer struct{ waits, throttles, oks int }

func (p *fakePacer) Wait(context.Context) error { p.waits++; return nil }
func (p *fakePacer) Throttled() (float64, bool) { p.throttles++; return 0, true }
func (p *fakePacer) Succeeded() (float64, bool) { p.oks++; return 0, false }

func TestListResumesAcrossThrottles(t *testing.T) {
	for _, group := range []string{"", "admins"} {
		api := &fakeLister{n: 130, throttle: map[int]bool{2: true, 3: true, 5: true}}
		pacer := &fakePacer{}
		l := Listing{API: cognito.Lister{API: api}, Pacer: pacer, Pool: pool, Filter: `username ^= "u"`, Group: group, Backoff: time.Millisecond}
		var got []string
		err := l.List(t.Context(), func(in Input) error {
			if in.Line != len(got)+1 {
				t.Errorf("line %d, want %d", in.Line, len(got)+1)
			}
			got = append(got, in.Username)
			return nil
		})
		if err != nil || len(got) != 130 || got[0] != "u000" || got[129] != "u129" {
			t.Fatalf("group %q: %d users, %v", group, len(got), err)
		}
		// Pages of 60: tokens "", 60 (throttled twice), 120 (throttled once).
		want := []string{"", "60", "60", "60", "120", "120"}
		if fmt.Sprint(api.tokens) != fmt.Sprint(want) {
			t.Errorf("group %q: tokens %q, want %q", group, api.tokens, want)
		}
		if pacer.waits != 6 || pacer.throttles != 3 || pacer.oks != 3 {
			t.Errorf("pacer %+v", pacer)
		}
		if group == "" && api.filter != `username ^= "u"` || api.group != group {
			t.Errorf("filter %q group %q", api.filter, api.group)
		}
	}
}

func TestListErrors(t *testing.T) {
	api := &fakeLister{fail: &ciptypes.ResourceNotFoundException{Message: aws.String("no pool")}}
	err := Listing{API: cognito.Lister{API: api}, Pacer: &fakePacer{}, Pool: pool}.List(t.Context(), func(Input) error { return nil })
	var le *ListError
	if !errors.As(err, &le) || api.calls != 1 {
		t.Errorf("got %v after %d calls, want a ListError at once", err, api.calls)
	}
	api = &fakeLister{fail: errors.New("connection reset")}
	err = Listing{API: cognito.Lister{API: api}, Pacer: &fakePacer{}, Pool: pool, Retries: 2, Backoff: time.Millisecond}.List(t.Context(), func(Input) error { return nil })
	if err == nil || errors.As(err, &le) || api.calls != 3 {
		t.Errorf("got %v after %d calls, want a runtime error after 3", err, api.calls)
	}
}
