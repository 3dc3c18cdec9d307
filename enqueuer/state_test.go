package enqueuer_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/enqueuer"
)

func TestStateMachineTable(t *testing.T) {
	S := func(s enqueuer.State) enqueuer.State { return s }
	allowed := map[enqueuer.Event]map[enqueuer.State]enqueuer.State{
		enqueuer.EventStartPreImport: {S(enqueuer.StateDefault): enqueuer.StatePreImporting},
		enqueuer.EventFinishPreImport: {
			S(enqueuer.StatePreImporting):  enqueuer.StatePreImportDone,
			S(enqueuer.StateImportAborted): enqueuer.StatePreImportDone,
		},
		enqueuer.EventStartImport: {S(enqueuer.StatePreImportDone): enqueuer.StateImporting},
		enqueuer.EventFinishImport: {
			S(enqueuer.StateImporting):     enqueuer.StateImportDone,
			S(enqueuer.StateImportAborted): enqueuer.StateImportDone,
		},
		enqueuer.EventAbort: {
			S(enqueuer.StatePreImporting):  enqueuer.StateImportAborted,
			S(enqueuer.StatePreImportDone): enqueuer.StateImportAborted,
			S(enqueuer.StateImporting):     enqueuer.StateImportAborted,
		},

		enqueuer.EventRetry: {S(enqueuer.StateImportAborted): enqueuer.StatePreImporting},
		enqueuer.EventSkip: {
			S(enqueuer.StateDefault):       enqueuer.StateImportSkipped,
			S(enqueuer.StatePreImporting):  enqueuer.StateImportSkipped,
			S(enqueuer.StatePreImportDone): enqueuer.StateImportSkipped,
			S(enqueuer.StateImporting):     enqueuer.StateImportSkipped,
			S(enqueuer.StateImportAborted): enqueuer.StateImportSkipped,
		},
		enqueuer.EventReset:           {S(enqueuer.StateImportSkipped): enqueuer.StateDefault},
		enqueuer.EventResumePreImport: {S(enqueuer.StateImportAborted): enqueuer.StatePreImporting},
		enqueuer.EventResumeImport:    {S(enqueuer.StateImportAborted): enqueuer.StateImporting},
	}
	for _, ev := range enqueuer.Events {
		for _, from := range enqueuer.States {
			to, err := enqueuer.Next(from, ev)
			want, ok := allowed[ev][from]
			if ok {
				require.NoError(t, err, "%s from %s", ev, from)
				require.Equal(t, want, to, "%s from %s", ev, from)
				continue
			}
			require.ErrorIs(t, err, enqueuer.ErrInvalidTransition, "%s from %s", ev, from)
			var te *enqueuer.TransitionError
			require.True(t, errors.As(err, &te))
			target, _ := ev.Target()
			// The message names both states.
			require.Contains(t, err.Error(), string(from))
			require.Contains(t, err.Error(), string(target))
		}
	}
	_, err := enqueuer.Next(enqueuer.StateDefault, "launch")
	require.ErrorIs(t, err, enqueuer.ErrInvalidTransition)
	require.EqualError(t, mustErr(enqueuer.Next(enqueuer.StateImportDone, enqueuer.EventStartPreImport)),
		"enqueuer: invalid transition from import_done to pre_importing (event start_pre_import)")
}

func mustErr(_ enqueuer.State, err error) error { return err }

func TestInProgressStates(t *testing.T) {
	for _, s := range enqueuer.States {
		require.True(t, s.Valid())
		want := s == enqueuer.StatePreImporting || s == enqueuer.StatePreImportDone || s == enqueuer.StateImporting
		require.Equal(t, want, s.InProgress(), s)
	}
	require.False(t, enqueuer.State("bogus").Valid())
}

func TestValidatePath(t *testing.T) {
	for _, ok := range []string{"a", "group/project", "gitlab-org/gitlab-test/test_image_1", "a.b/c__d/e--f", "x/y/z/0"} {
		require.NoError(t, enqueuer.ValidatePath(ok), ok)
	}
	for _, bad := range []string{"", "/", "a/", "/a", "a//b", "a/../b", "..", ".", "a/./b", "A", "a b", "a/b?c", "a/-b", "a/b-", "a%2Fb", "a/b\x00"} {
		require.ErrorIs(t, enqueuer.ValidatePath(bad), enqueuer.ErrInvalidPath, "%q", bad)
	}
	long := make([]byte, enqueuer.MaxPathLength+1)
	for i := range long {
		long[i] = 'a'
	}
	require.ErrorIs(t, enqueuer.ValidatePath(string(long)), enqueuer.ErrInvalidPath)
	require.ErrorContains(t, enqueuer.ValidatePath("a//b"), "empty segment")
	require.ErrorContains(t, enqueuer.ValidatePath("a/../b"), `".."`)
}
