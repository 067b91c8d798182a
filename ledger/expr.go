package ledger

import (
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// update builds an update expression and its condition. Every attribute
// name goes through a placeholder (DynamoDB reserves words such as user,
// and counter names hold ':'), every value through one.
type update struct {
	names              map[string]string // placeholder -> attribute
	placeholders       map[string]string // attribute -> placeholder
	values             map[string]types.AttributeValue
	sets, adds, remove []string
	cond               string // the condition, written with n and v
}

func newUpdate() *update {
	return &update{names: map[string]string{}, placeholders: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// n is attr's placeholder.
func (u *update) n(attr string) string {
	if p, ok := u.placeholders[attr]; ok {
		return p
	}
	p := "#a" + strconv.Itoa(len(u.names))
	u.names[p] = attr
	u.placeholders[attr] = p
	return p
}

// v is a new placeholder for av.
func (u *update) v(av types.AttributeValue) string {
	p := ":v" + strconv.Itoa(len(u.values))
	u.values[p] = av
	return p
}

func (u *update) set(attr string, av types.AttributeValue) {
	u.sets = append(u.sets, u.n(attr)+" = "+u.v(av))
}

// setFirst sets attr unless it is set.
func (u *update) setFirst(attr string, av types.AttributeValue) {
	n := u.n(attr)
	u.sets = append(u.sets, n+" = if_not_exists("+n+", "+u.v(av)+")")
}

func (u *update) add(attr string, delta int64) {
	u.adds = append(u.adds, u.n(attr)+" "+u.v(num(delta)))
}

func (u *update) del(attrs ...string) {
	for _, a := range attrs {
		u.remove = append(u.remove, u.n(a))
	}
}

func (u *update) expression() *string {
	var b strings.Builder
	for _, part := range []struct {
		verb  string
		items []string
	}{{"SET", u.sets}, {"ADD", u.adds}, {"REMOVE", u.remove}} {
		if len(part.items) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(part.verb + " " + strings.Join(part.items, ", "))
	}
	s := b.String()
	return &s
}

func (u *update) condition() *string {
	if u.cond == "" {
		return nil
	}
	return &u.cond
}

func (u *update) valueMap() map[string]types.AttributeValue {
	if len(u.values) == 0 {
		return nil
	}
	return u.values
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// millis is t as the table stores times: Unix milliseconds.
func millis(t time.Time) types.AttributeValue { return num(t.UnixMilli()) }

// item attribute readers; a missing or mistyped attribute reads as zero.

func getS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(item map[string]types.AttributeValue, name string) (int64, bool) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	return n, err == nil
}

func getTime(item map[string]types.AttributeValue, name string) time.Time {
	if n, ok := getN(item, name); ok {
		return time.UnixMilli(n).UTC()
	}
	return time.Time{}
}
