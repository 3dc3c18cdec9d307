package sidekiqmove

import (
	"fmt"

	"github.com/ferryhq/ferry/routing"
)

// Move is one worker class whose jobs go from one queue to another.
type Move struct {
	// Worker is the class name jobs carry: the payload's "class", or its
	// "wrapped" for ActiveJob jobs (routing.Worker.WorkerName).
	Worker string
	// From is the queue the worker's jobs wait in now, To the queue they
	// move to (plain queue names, without "queue:").
	From, To string
}

// String formats the move as "Worker: from -> to".
func (m Move) String() string { return fmt.Sprintf("%s: %s -> %s", m.Worker, m.From, m.To) }

// MovesFromChanges returns a Move for every change of a worker that has a
// class name and a queue both before and after (see routing.Diff and
// routing.RolloutPlan.Changes). Workers that appear or disappear have no
// jobs to move; GitLab's dummy entries never change queue.
func MovesFromChanges(changes []routing.Change) []Move {
	var moves []Move
	for _, c := range changes {
		if c.From == "" || c.To == "" || c.Worker.WorkerName == "" || c.Worker.IsDummy() {
			continue
		}
		moves = append(moves, Move{Worker: c.Worker.WorkerName, From: c.From, To: c.To})
	}
	return moves
}
