package mfa

import (
	"strings"
	"unicode"
)

// AnswerKind is what a keyboard-interactive answer asks for.
type AnswerKind int

const (
	// AnswerInvalid: nothing usable (too long, letters, control bytes).
	AnswerInvalid AnswerKind = iota
	// AnswerCode: a numeric code (TOTP, or a Duo passcode).
	AnswerCode
	// AnswerPush: an empty answer or "push": send a Duo push.
	AnswerPush
	// AnswerPhone: "phone": have Duo call.
	AnswerPhone
)

// MaxAnswer bounds what ParseAnswer looks at; longer answers are invalid.
const MaxAnswer = 64

// Answer is one parsed keyboard-interactive response.
type Answer struct {
	Kind AnswerKind
	Code string // digits only, for AnswerCode
}

// ParseAnswer interprets what a person typed at the second-factor prompt.
// Phone keyboards insert spaces ("123 456") and auto-capitalise ("Push"),
// so spaces and case are forgiven; anything else that is not 6 to 8 digits
// or a known word is invalid. The input is untrusted: any bytes at all.
func ParseAnswer(s string) Answer {
	if len(s) > MaxAnswer {
		return Answer{}
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t' || r == '-' || r == '\r' || r == '\n' || r == '\u00a0':
			continue
		case r > unicode.MaxASCII || unicode.IsControl(r):
			return Answer{}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	w := b.String()
	switch w {
	case "", "push", "1":
		return Answer{Kind: AnswerPush}
	case "phone", "call", "2":
		return Answer{Kind: AnswerPhone}
	}
	if len(w) < 6 || len(w) > 8 {
		return Answer{}
	}
	for _, r := range w {
		if r < '0' || r > '9' {
			return Answer{}
		}
	}
	return Answer{Kind: AnswerCode, Code: w}
}
