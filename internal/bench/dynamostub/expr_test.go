package dynamostub

import "testing"

// FuzzExpressions: no expression, however malformed, panics the stand-in;
// it parses or is refused, and a parsed one evaluates or is refused.
func FuzzExpressions(f *testing.F) {
	for _, s := range []string{
		"SET #a0 = :v0, #a1 = if_not_exists(#a1, :v1) ADD #a2 :v2 REMOVE #a3",
		"(attribute_not_exists(#a0) OR #a0 = :v0) AND (attribute_not_exists(#a1) OR #a1 = :v1 OR #a2 <= :v2)",
		"NOT begins_with(#a0, :v0) AND #a1 <> :v1",
		"SET #a0 = #a1 + :v0 - :v1",
		"((", "SET", ":v0 =", "if_not_exists(", "#a0 = :v0 AND",
	} {
		f.Add(s)
	}
	n := func(s string) *string { return &s }
	names := map[string]string{"#a0": "a", "#a1": "b", "#a2": "c", "#a3": "d"}
	values := map[string]value{":v0": {N: n("1")}, ":v1": {S: n("x")}, ":v2": {N: n("2.5")}}
	it := item{"a": {N: n("3")}, "b": {S: n("xy")}, "c": {N: n("1e3")}}
	f.Fuzz(func(t *testing.T, expr string) {
		if acts, err := parseUpdate(expr, newScope(names, values), []string{"pk", "sk"}); err == nil {
			out := it.clone()
			for _, a := range acts {
				_ = a(it, out)
			}
		}
		if c, err := parseCondition(expr, newScope(names, values)); err == nil {
			_, _ = c(it)
		}
	})
}
