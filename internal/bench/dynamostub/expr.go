package dynamostub

import (
	"fmt"
	"math/big"
	"strings"
)

// value is one attribute value; the stand-in serves scalars only.
type value struct {
	S    *string `json:"S,omitempty"`
	N    *string `json:"N,omitempty"`
	BOOL *bool   `json:"BOOL,omitempty"`
	NULL *bool   `json:"NULL,omitempty"`
}

func (v value) valid() bool { return v.S != nil || v.N != nil || v.BOOL != nil || v.NULL != nil }

// item is one item's attributes by name.
type item map[string]value

func (it item) clone() item {
	out := make(item, len(it)+4)
	for k, v := range it {
		out[k] = v
	}
	return out
}

// number parses an N value.
func number(s string) (*big.Rat, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a number", s)
	}
	return r, nil
}

func formatNumber(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	return strings.TrimRight(r.FloatString(38), "0")
}

// scope is an expression's placeholders and which of them it used:
// DynamoDB refuses a request that provides one it does not use.
type scope struct {
	names  map[string]string
	values map[string]value
	used   map[string]bool
}

func newScope(names map[string]string, values map[string]value) *scope {
	return &scope{names: names, values: values, used: map[string]bool{}}
}

// unused names the first placeholder provided and never used ("" if none).
func (s *scope) unused() string {
	for k := range s.names {
		if !s.used[k] {
			return k
		}
	}
	for k := range s.values {
		if !s.used[k] {
			return k
		}
	}
	return ""
}

// token is one lexeme of an expression.
type token struct {
	kind byte // 'i' identifier or keyword, '#' name, ':' value, 'p' punctuation, 0 end
	text string
}

func lex(src string) ([]token, error) {
	var out []token
	word := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#' || c == ':' || word(c):
			j := i + 1
			for j < len(src) && word(src[j]) {
				j++
			}
			kind := byte('i')
			if c == '#' || c == ':' {
				kind = c
				if j == i+1 {
					return nil, fmt.Errorf("an empty placeholder at %d", i)
				}
			}
			out = append(out, token{kind, src[i:j]})
			i = j
		case c == '<' && i+1 < len(src) && (src[i+1] == '=' || src[i+1] == '>'), c == '>' && i+1 < len(src) && src[i+1] == '=':
			out = append(out, token{'p', src[i : i+2]})
			i += 2
		case strings.IndexByte("()=,<>+-", c) >= 0:
			out = append(out, token{'p', src[i : i+1]})
			i++
		case c == '.' || c == '[':
			return nil, fmt.Errorf("nested attribute paths are not served by the stand-in")
		default:
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return out, nil
}

// parser reads one expression's tokens.
type parser struct {
	toks []token
	pos  int
	sc   *scope
}

func newParser(src string, sc *scope) (*parser, error) {
	toks, err := lex(src)
	return &parser{toks: toks, sc: sc}, err
}

func (p *parser) peek() token {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return token{}
}

func (p *parser) next() token {
	t := p.peek()
	if p.pos < len(p.toks) {
		p.pos++
	}
	return t
}

// keyword reports whether the next token is the keyword kw, and takes it.
func (p *parser) keyword(kw string) bool {
	if t := p.peek(); t.kind == 'i' && strings.EqualFold(t.text, kw) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) punct(s string) bool {
	if t := p.peek(); t.kind == 'p' && t.text == s {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(s string) error {
	if !p.punct(s) {
		return fmt.Errorf("want %q, found %q", s, p.peek().text)
	}
	return nil
}

// path reads an attribute name: a #placeholder or a bare name.
func (p *parser) path() (string, error) {
	switch t := p.next(); t.kind {
	case '#':
		name, ok := p.sc.names[t.text]
		if !ok {
			return "", fmt.Errorf("ExpressionAttributeNames has no %s", t.text)
		}
		p.sc.used[t.text] = true
		return name, nil
	case 'i':
		return t.text, nil
	default:
		return "", fmt.Errorf("want an attribute, found %q", t.text)
	}
}

// operand is a value read from the item before the write (ok false: absent).
type operand func(it item) (v value, ok bool, err error)

// operand reads a path, a :value, if_not_exists(path, operand), or either
// with + or - and another.
func (p *parser) operand() (operand, error) {
	left, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		var sign int
		switch {
		case p.punct("+"):
			sign = 1
		case p.punct("-"):
			sign = -1
		default:
			return left, nil
		}
		right, err := p.term()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(it item) (value, bool, error) {
			a, aok, err := l(it)
			if err != nil {
				return value{}, false, err
			}
			b, bok, err := right(it)
			if err != nil {
				return value{}, false, err
			}
			if !aok || !bok || a.N == nil || b.N == nil {
				return value{}, false, fmt.Errorf("an operand of + or - is not a number or is absent")
			}
			x, err := number(*a.N)
			if err != nil {
				return value{}, false, err
			}
			y, err := number(*b.N)
			if err != nil {
				return value{}, false, err
			}
			if sign < 0 {
				y.Neg(y)
			}
			s := formatNumber(x.Add(x, y))
			return value{N: &s}, true, nil
		}
	}
}

func (p *parser) term() (operand, error) {
	t := p.peek()
	switch {
	case t.kind == ':':
		p.pos++
		v, ok := p.sc.values[t.text]
		if !ok {
			return nil, fmt.Errorf("ExpressionAttributeValues has no %s", t.text)
		}
		p.sc.used[t.text] = true
		return func(item) (value, bool, error) { return v, true, nil }, nil
	case t.kind == 'i' && strings.EqualFold(t.text, "if_not_exists"):
		p.pos++
		if err := p.expect("("); err != nil {
			return nil, err
		}
		name, err := p.path()
		if err != nil {
			return nil, err
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		alt, err := p.operand()
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return func(it item) (value, bool, error) {
			if v, ok := it[name]; ok {
				return v, true, nil
			}
			return alt(it)
		}, nil
	default:
		name, err := p.path()
		if err != nil {
			return nil, err
		}
		return func(it item) (value, bool, error) { v, ok := it[name]; return v, ok, nil }, nil
	}
}

// action changes an item; its operands read old, the item before the write.
type action func(old, out item) error

// parseUpdate reads an update expression: SET, ADD and REMOVE clauses
// (DELETE, for sets, is not served). It refuses two actions on one
// attribute, and an action on a key attribute, as DynamoDB does.
func parseUpdate(src string, sc *scope, keys []string) ([]action, error) {
	p, err := newParser(src, sc)
	if err != nil {
		return nil, err
	}
	var acts []action
	targets := map[string]bool{}
	target := func() (string, error) {
		name, err := p.path()
		switch {
		case err != nil:
			return "", err
		case targets[name]:
			return "", fmt.Errorf("two document paths overlap: %s", name)
		}
		for _, k := range keys {
			if k == name {
				return "", fmt.Errorf("cannot update attribute %s: it is part of the key", name)
			}
		}
		targets[name] = true
		return name, nil
	}
	seen := map[string]bool{}
	for p.peek().kind != 0 {
		clause := strings.ToUpper(p.next().text)
		if seen[clause] {
			return nil, fmt.Errorf("the %s clause appears twice", clause)
		}
		seen[clause] = true
		for {
			name, err := target()
			if err != nil {
				return nil, err
			}
			switch clause {
			case "SET":
				if err := p.expect("="); err != nil {
					return nil, err
				}
				op, err := p.operand()
				if err != nil {
					return nil, err
				}
				acts = append(acts, func(old, out item) error {
					v, ok, err := op(old)
					if err == nil && !ok {
						err = fmt.Errorf("the value of %s is absent", name)
					}
					if err == nil {
						out[name] = v
					}
					return err
				})
			case "ADD":
				op, err := p.term()
				if err != nil {
					return nil, err
				}
				acts = append(acts, func(old, out item) error { return add(old, out, name, op) })
			case "REMOVE":
				acts = append(acts, func(_, out item) error { delete(out, name); return nil })
			default:
				return nil, fmt.Errorf("clause %q is not served by the stand-in (SET, ADD, REMOVE)", clause)
			}
			if !p.punct(",") {
				break
			}
		}
	}
	if len(acts) == 0 {
		return nil, fmt.Errorf("an empty update expression")
	}
	return acts, nil
}

// add carries out ADD name op: a number added to the attribute (absent: 0).
func add(old, out item, name string, op operand) error {
	d, ok, err := op(old)
	if err != nil {
		return err
	}
	if !ok || d.N == nil {
		return fmt.Errorf("ADD %s: the stand-in adds numbers only", name)
	}
	sum, err := number(*d.N)
	if err != nil {
		return err
	}
	if cur, ok := old[name]; ok {
		if cur.N == nil {
			return fmt.Errorf("ADD %s: the attribute is not a number", name)
		}
		x, err := number(*cur.N)
		if err != nil {
			return err
		}
		sum.Add(sum, x)
	}
	s := formatNumber(sum)
	out[name] = value{N: &s}
	return nil
}

// condition is a condition over the item before the write.
type condition func(it item) (bool, error)

// parseCondition reads a condition expression: comparisons (= <> < <= >
// >=), attribute_exists, attribute_not_exists and begins_with, joined by
// AND, OR and NOT, with parentheses.
func parseCondition(src string, sc *scope) (condition, error) {
	p, err := newParser(src, sc)
	if err != nil {
		return nil, err
	}
	c, err := p.or()
	if err == nil && p.peek().kind != 0 {
		err = fmt.Errorf("unexpected %q", p.peek().text)
	}
	return c, err
}

func (p *parser) or() (condition, error) {
	return p.chain("OR", p.and, func(a, b bool) bool { return a || b })
}

func (p *parser) and() (condition, error) {
	return p.chain("AND", p.not, func(a, b bool) bool { return a && b })
}

func (p *parser) chain(kw string, sub func() (condition, error), join func(a, b bool) bool) (condition, error) {
	left, err := sub()
	if err != nil {
		return nil, err
	}
	for p.keyword(kw) {
		right, err := sub()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(it item) (bool, error) {
			a, err := l(it)
			if err != nil {
				return false, err
			}
			b, err := right(it)
			return join(a, b), err
		}
	}
	return left, nil
}

func (p *parser) not() (condition, error) {
	if p.keyword("NOT") {
		c, err := p.not()
		if err != nil {
			return nil, err
		}
		return func(it item) (bool, error) { ok, err := c(it); return !ok, err }, nil
	}
	return p.primary()
}

func (p *parser) primary() (condition, error) {
	if p.punct("(") {
		c, err := p.or()
		if err == nil {
			err = p.expect(")")
		}
		return c, err
	}
	if t := p.peek(); t.kind == 'i' && p.pos+1 < len(p.toks) && p.toks[p.pos+1].text == "(" {
		switch fn := strings.ToLower(t.text); fn {
		case "attribute_exists", "attribute_not_exists":
			p.pos += 2
			name, err := p.path()
			if err == nil {
				err = p.expect(")")
			}
			want := fn == "attribute_exists"
			return func(it item) (bool, error) { _, ok := it[name]; return ok == want, nil }, err
		case "begins_with":
			p.pos += 2
			a, err := p.operand()
			if err == nil {
				err = p.expect(",")
			}
			var b operand
			if err == nil {
				b, err = p.operand()
			}
			if err == nil {
				err = p.expect(")")
			}
			return func(it item) (bool, error) {
				x, xok, err := a(it)
				if err != nil {
					return false, err
				}
				y, yok, err := b(it)
				return xok && yok && x.S != nil && y.S != nil && strings.HasPrefix(*x.S, *y.S), err
			}, err
		case "if_not_exists":
		default:
			return nil, fmt.Errorf("function %s is not served by the stand-in", t.text)
		}
	}
	left, err := p.operand()
	if err != nil {
		return nil, err
	}
	op := p.next()
	switch op.text {
	case "=", "<>", "<", "<=", ">", ">=":
	default:
		return nil, fmt.Errorf("want a comparison, found %q", op.text)
	}
	right, err := p.operand()
	if err != nil {
		return nil, err
	}
	return func(it item) (bool, error) {
		a, aok, err := left(it)
		if err != nil {
			return false, err
		}
		b, bok, err := right(it)
		if err != nil {
			return false, err
		}
		return compare(op.text, a, aok, b, bok)
	}, nil
}

// compare applies a comparator. An absent operand makes every comparison
// false but <> true; values of different types are not equal and not
// ordered.
func compare(op string, a value, aok bool, b value, bok bool) (bool, error) {
	if !aok || !bok {
		return op == "<>", nil
	}
	var c int
	switch {
	case a.N != nil && b.N != nil:
		x, err := number(*a.N)
		if err != nil {
			return false, err
		}
		y, err := number(*b.N)
		if err != nil {
			return false, err
		}
		c = x.Cmp(y)
	case a.S != nil && b.S != nil:
		c = strings.Compare(*a.S, *b.S)
	case a.BOOL != nil && b.BOOL != nil && (op == "=" || op == "<>"):
		if *a.BOOL != *b.BOOL {
			c = 1
		}
	default:
		return op == "<>", nil
	}
	switch op {
	case "=":
		return c == 0, nil
	case "<>":
		return c != 0, nil
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	default:
		return c >= 0, nil
	}
}
