package bastion

import (
	"errors"
	"fmt"
	"time"

	glssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-sec/rampart/bastion/audit"
	"github.com/rampart-sec/rampart/bastion/mfa"
)

// errSecondFactor is what the client sees for any second-factor failure;
// the audit log has the real reason.
var errSecondFactor = errors.New("bastion: second factor failed")

// secondFactor runs after the key was verified, as the only method left.
func (s *Server) secondFactor(ctx glssh.Context, st *connState, conn gossh.ConnMetadata, client gossh.KeyboardInteractiveChallenge) (*gossh.Permissions, error) {
	st.mu.Lock()
	user, src, keyOK, fp := st.user, st.source, st.keyOK, st.keyFP
	st.mu.Unlock()
	if u, _ := splitUser(conn.User()); !keyOK || u != user {
		return nil, errSecondFactor
	}
	rec := audit.Record{Type: audit.TypeAuth, User: user, Source: addrString(src), Method: "keyboard-interactive", Fields: map[string]any{"key": fp}}
	fail := func(method, reason string) (*gossh.Permissions, error) {
		rec.Method, rec.Result, rec.Reason = method, audit.ResultFailure, reason
		s.m.auth.WithLabelValues(method, audit.ResultFailure).Inc()
		s.audit(rec)
		st.mu.Lock()
		st.failCounted = true
		st.mu.Unlock()
		// Slow the next guess down; the client waits for this answer.
		delay := s.opts.Guard.Fail(src, user, "second factor failed")
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		return nil, errSecondFactor
	}
	if l, locked := s.opts.Guard.Lockout(src, user); locked {
		st.mu.Lock()
		st.failCounted = true // a login while locked is not counted again
		st.mu.Unlock()
		return s.lockedOut(client, rec, l)
	}
	u := s.policy().User(user)
	if u == nil {
		return fail("keyboard-interactive", "unknown user")
	}
	useTOTP := (u.SecondFactor == FactorTOTP || u.SecondFactor == FactorEither) && s.opts.TOTP.Has(user)
	useDuo := (u.SecondFactor == FactorDuo || u.SecondFactor == FactorEither) && s.opts.Duo != nil
	if !useTOTP && !useDuo {
		return fail("keyboard-interactive", "no second factor enrolled for this user")
	}

	var duoDevice string
	if useDuo {
		pre, err := s.opts.Duo.Preauth(ctx, u.DuoUsername, addrString(src))
		switch {
		case err != nil && !useTOTP:
			if s.opts.DuoFailOpen {
				return s.mfaSuccess(st, &rec, "duo", "duo unreachable; fail_mode open: "+err.Error())
			}
			return fail("duo", "duo unreachable; fail_mode secure: "+err.Error())
		case err != nil:
			useDuo = false // TOTP remains
			s.log.Warn("bastion: duo unreachable, offering TOTP only", "user", user, "err", err)
		case pre.Result == "allow":
			return s.mfaSuccess(st, &rec, "duo", "duo preauth: allow (bypass configured in Duo)")
		case pre.Result == "deny":
			if !useTOTP {
				return fail("duo", "duo preauth: deny: "+pre.StatusMsg)
			}
			useDuo = false
		case pre.Result == "enroll":
			if !useTOTP {
				client("", "Duo: "+pre.StatusMsg+"\n", nil, nil)
				return fail("duo", "duo preauth: user not enrolled")
			}
			useDuo = false
		default:
			duoDevice = pre.PushName
		}
	}

	// The code is asked for by the issuer's name, as the authenticator
	// app shows it, so a phone user knows which of their codes to type.
	question := s.opts.Config.TOTP.Issuer + " code: "
	switch {
	case useTOTP && useDuo:
		question = s.opts.Config.TOTP.Issuer + " code, or press Enter for a Duo push: "
	case useDuo && duoDevice != "":
		question = "Duo passcode, or press Enter for a push to " + duoDevice + " (type phone for a call): "
	case useDuo:
		question = "Duo passcode (type phone for a call): "
	}
	// Instructions end in a newline: dbclient prints them and the prompt
	// with nothing between.
	answers, err := client("", "Key accepted for "+user+".\n", []string{question}, []bool{false})
	if err != nil {
		return fail("keyboard-interactive", "no answer: "+err.Error())
	}
	if len(answers) != 1 {
		return fail("keyboard-interactive", fmt.Sprintf("expected 1 answer, got %d", len(answers)))
	}
	if mfa.IsRecoveryCode(answers[0]) {
		left, err := s.opts.TOTP.UseRecoveryCode(user, answers[0])
		if err != nil {
			return fail("recovery-code", err.Error())
		}
		return s.mfaSuccess(st, &rec, "recovery-code", fmt.Sprintf("one-time recovery code used; %d left", left))
	}
	ans := mfa.ParseAnswer(answers[0])

	switch ans.Kind {
	case mfa.AnswerCode:
		if useTOTP {
			err := s.opts.TOTP.Check(user, ans.Code)
			if errors.Is(err, mfa.ErrReplayed) {
				err = s.nextCode(client, rec, user, question)
			}
			if err == nil {
				return s.mfaSuccess(st, &rec, "totp", "")
			}
			if !useDuo || errors.Is(err, mfa.ErrReplayed) {
				return fail("totp", err.Error())
			}
		}
		if useDuo {
			return s.duoResult(st, &rec, fail, "duo-passcode", s.opts.Duo.Passcode(ctx, u.DuoUsername, addrString(src), ans.Code))
		}
		return fail("keyboard-interactive", "malformed answer")
	case mfa.AnswerPush, mfa.AnswerPhone:
		if !useDuo {
			return fail("totp", "no code given")
		}
		method, note := "duo-push", "Duo push sent"
		if duoDevice != "" {
			note += " to " + duoDevice
		}
		note += ": approve it on your phone (waiting up to " + s.duoPushTimeout() + ")."
		if ans.Kind == mfa.AnswerPhone {
			method, note = "duo-phone", "Duo is calling you: answer and press the key it asks for."
		}
		// A round with no questions: OpenSSH and phone clients print the
		// instruction at once, so the wait for the push does not look hung.
		if _, err := client("", note+"\n", nil, nil); err != nil {
			return fail(method, "client went away: "+err.Error())
		}
		if ans.Kind == mfa.AnswerPhone {
			return s.duoResult(st, &rec, fail, method, s.opts.Duo.Phone(ctx, u.DuoUsername, addrString(src)))
		}
		return s.duoResult(st, &rec, fail, method, s.opts.Duo.Push(ctx, u.DuoUsername, addrString(src)))
	}
	return fail("keyboard-interactive", "malformed answer")
}

func (s *Server) duoPushTimeout() string {
	if s.opts.Config.Duo != nil && s.opts.Config.Duo.PushTimeout > 0 {
		return time.Duration(s.opts.Config.Duo.PushTimeout).String()
	}
	return "1m0s"
}

func (s *Server) duoResult(st *connState, rec *audit.Record, fail func(string, string) (*gossh.Permissions, error), method string, err error) (*gossh.Permissions, error) {
	switch {
	case err == nil:
		return s.mfaSuccess(st, rec, method, "")
	case errors.Is(err, mfa.ErrDuoUnavailable) && s.opts.DuoFailOpen:
		return s.mfaSuccess(st, rec, method, "duo unreachable; fail_mode open: "+err.Error())
	case errors.Is(err, mfa.ErrDuoUnavailable):
		return fail(method, "duo unreachable; fail_mode secure: "+err.Error())
	}
	return fail(method, err.Error())
}

func (s *Server) mfaSuccess(st *connState, rec *audit.Record, method, reason string) (*gossh.Permissions, error) {
	rec.Method, rec.Result, rec.Reason = method, audit.ResultSuccess, reason
	if err := s.audit(*rec); err != nil {
		// No trail, no entry.
		return nil, errSecondFactor
	}
	s.m.auth.WithLabelValues(method, audit.ResultSuccess).Inc()
	st.mu.Lock()
	st.mfaOK = true
	if st.preauth {
		st.preauth = false
		s.startups.done(st.source)
	}
	user, fp := st.user, st.keyFP
	st.mu.Unlock()
	s.opts.Guard.Success(user)
	return &gossh.Permissions{Extensions: map[string]string{"rampart-user": user, "rampart-key": fp, "rampart-mfa": method}}, nil
}

// nextCode answers a code that was already used (typed twice, or the
// login before took it): the user is told so and asked once more, since
// the authenticator shows the next code within 30 seconds. The replay is
// audited; only the final answer counts as a failure.
func (s *Server) nextCode(client gossh.KeyboardInteractiveChallenge, rec audit.Record, user, question string) error {
	rec.Method, rec.Result, rec.Reason = "totp", audit.ResultFailure, mfa.ErrReplayed.Error()+"; asked for the next code"
	s.m.auth.WithLabelValues("totp", audit.ResultFailure).Inc()
	s.audit(rec)
	answers, err := client("", "That code was already used:\nwait for the next code.\n", []string{question}, []bool{false})
	if err != nil || len(answers) != 1 {
		return mfa.ErrReplayed
	}
	if ans := mfa.ParseAnswer(answers[0]); ans.Kind == mfa.AnswerCode {
		return s.opts.TOTP.Check(user, ans.Code)
	}
	return mfa.ErrWrongCode
}
