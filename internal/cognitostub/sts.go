package cognitostub

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// STS's Query protocol.
const (
	stsVersion = "2011-06-15"
	stsXMLNS   = "https://sts.amazonaws.com/doc/2011-06-15/"
)

// Access keys are 20 characters: ASIA for temporary credentials (what
// AssumeRole gives), then the account's 12 digits, then 4 of a counter.
const (
	tempKeyPrefix = "ASIA"
	keyLen        = 20
)

// roleARN is an IAM role's ARN; its account is the fifth field, its name
// what follows "role/" (with any path).
var roleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::([0-9]{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$`)

// stsState is the credentials the stand-in's STS issued.
type stsState struct {
	issued     map[string]assumed // access key -> the session it was issued for
	next       int                // the counter in the next key
	assumed    int                // AssumeRole calls since Reset
	identities int                // GetCallerIdentity calls since Reset
}

// assumed is one role session.
type assumed struct{ account, role, session string }

// AccessKey is the access key of the n-th credentials issued in account:
// "ASIA" + the account + n in 4 base-36 digits (mod 36^4).
func AccessKey(account string, n int) string {
	d := strconv.FormatInt(int64(n%(36*36*36*36)), 36)
	return tempKeyPrefix + account + strings.Repeat("0", 4-len(d)) + strings.ToUpper(d)
}

// AccountOf is the account an access key belongs to: the one AccessKey
// put in it, else DefaultAccount.
func AccountOf(accessKey string) string {
	if len(accessKey) != keyLen || !strings.HasPrefix(accessKey, tempKeyPrefix) {
		return DefaultAccount
	}
	account := accessKey[len(tempKeyPrefix) : len(tempKeyPrefix)+12]
	for _, c := range account {
		if c < '0' || c > '9' {
			return DefaultAccount
		}
	}
	return account
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumeRoleResponse struct {
	XMLName       xml.Name       `xml:"AssumeRoleResponse"`
	XMLNS         string         `xml:"xmlns,attr"`
	Credentials   stsCredentials `xml:"AssumeRoleResult>Credentials"`
	AssumedRoleID string         `xml:"AssumeRoleResult>AssumedRoleUser>AssumedRoleId"`
	AssumedARN    string         `xml:"AssumeRoleResult>AssumedRoleUser>Arn"`
	RequestID     string         `xml:"ResponseMetadata>RequestId"`
}

type callerIdentityResponse struct {
	XMLName   xml.Name `xml:"GetCallerIdentityResponse"`
	XMLNS     string   `xml:"xmlns,attr"`
	Arn       string   `xml:"GetCallerIdentityResult>Arn"`
	UserID    string   `xml:"GetCallerIdentityResult>UserId"`
	Account   string   `xml:"GetCallerIdentityResult>Account"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

// serveSTS answers STS's AssumeRole and GetCallerIdentity.
func (s *Stub) serveSTS(w http.ResponseWriter, r *http.Request, form url.Values) {
	fail := func(code, format string, args ...any) {
		s.answerQuery(w, http.StatusBadRequest, queryErrorResponse{XMLNS: stsXMLNS, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	switch form.Get("Action") {
	case "AssumeRole":
		arn, session := form.Get("RoleArn"), form.Get("RoleSessionName")
		m := roleARN.FindStringSubmatch(arn)
		if m == nil {
			fail("ValidationError", "RoleArn %q is not a role ARN", arn)
			return
		}
		if session == "" || len(session) > 64 {
			fail("ValidationError", "RoleSessionName %q: want 1 to 64 characters", session)
			return
		}
		duration := time.Hour
		if d := form.Get("DurationSeconds"); d != "" {
			n, err := strconv.Atoi(d)
			if err != nil || n < 900 || n > 43200 {
				fail("ValidationError", "DurationSeconds %q: want 900 to 43200", d)
				return
			}
			duration = time.Duration(n) * time.Second
		}
		s.mu.Lock()
		if s.sts.issued == nil {
			s.sts.issued = map[string]assumed{}
		}
		key := AccessKey(m[1], s.sts.next)
		s.sts.next++
		s.sts.assumed++
		s.sts.issued[key] = assumed{account: m[1], role: m[2], session: session}
		expires := s.now().Add(duration)
		s.mu.Unlock()
		s.answerQuery(w, http.StatusOK, assumeRoleResponse{XMLNS: stsXMLNS, RequestID: "cognitostub",
			Credentials: stsCredentials{AccessKeyID: key, SecretAccessKey: "secret-" + key, SessionToken: "token-" + key,
				Expiration: expires.UTC().Format(time.RFC3339)},
			AssumedRoleID: "AROA" + m[1] + ":" + session,
			AssumedARN:    "arn:aws:sts::" + m[1] + ":assumed-role/" + m[2] + "/" + session})
	case "GetCallerIdentity":
		key, _, _ := credentialOf(r.Header.Get("Authorization"))
		s.mu.Lock()
		s.sts.identities++
		a, ok := s.sts.issued[key]
		s.mu.Unlock()
		out := callerIdentityResponse{XMLNS: stsXMLNS, RequestID: "cognitostub", Account: AccountOf(key),
			Arn: "arn:aws:iam::" + AccountOf(key) + ":user/bench", UserID: "AIDA" + AccountOf(key)}
		if ok {
			out.Arn = "arn:aws:sts::" + a.account + ":assumed-role/" + a.role + "/" + a.session
			out.UserID = "AROA" + a.account + ":" + a.session
		}
		s.answerQuery(w, http.StatusOK, out)
	default:
		fail("InvalidAction", "the stand-in's STS serves AssumeRole and GetCallerIdentity only, not %q", form.Get("Action"))
	}
}
