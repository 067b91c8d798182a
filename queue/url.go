package queue

import (
	"net/url"
	"path"
	"regexp"
	"strings"
)

// awsQueueHost matches the hosts of SQS in a Region: sqs.R.amazonaws.com,
// R.queue.amazonaws.com, the legacy queue.amazonaws.com (us-east-1), the
// FIPS, dual-stack and VPC endpoint forms, and China's .cn.
var awsQueueHost = regexp.MustCompile(`^(?:sqs(?:-fips)?\.([a-z0-9-]+)\.(?:amazonaws\.com(?:\.cn)?|api\.aws)|([a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?|(queue)\.amazonaws\.com|vpce-[a-z0-9-]+\.sqs\.([a-z0-9-]+)\.vpce\.amazonaws\.com(?:\.cn)?)$`)

// SameURL reports whether two queue URLs are spellings of one queue:
// whatever the scheme, a trailing slash, or the form of an AWS host (within
// a Region, the account ID and queue name in the path name the queue).
func SameURL(a, b string) bool { return queueKey(a) == queueKey(b) }

// queueKey is what names a queue in its URL: the Region of an AWS host, or
// else the host and port, then the path.
func queueKey(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return raw
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "80" || port == "443" {
		port = ""
	}
	if m := awsQueueHost.FindStringSubmatch(host); m != nil {
		host, port = "aws:"+m[1]+m[2]+m[4], ""
		if m[3] != "" {
			host = "aws:us-east-1"
		}
	}
	return host + ":" + port + path.Clean("/"+u.Path)
}
