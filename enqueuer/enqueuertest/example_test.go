package enqueuertest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
)

// A host's unit test drives its own code against the in-memory Store and
// the fake registry: here a transition that loses a race is refused, and
// the registry refuses starts beyond its capacity.
func Example() {
	ctx := context.Background()
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{})
	repo, _ := store.Add(ctx, enqueuer.NewRepository{Path: "group/app", TagCount: 3})

	change := enqueuer.Change{ID: repo.ID, From: enqueuer.StateDefault, Event: enqueuer.EventStartPreImport}
	moved, err := store.Transition(ctx, change)
	fmt.Println(moved.State, err)
	_, err = store.Transition(ctx, change) // a second caller read the same state
	fmt.Println(errors.Is(err, enqueuer.ErrStateChanged))

	registry := enqueuertest.NewRegistry(enqueuertest.RegistryOptions{MaxImports: 1})
	fmt.Println(registry.StartPreImport(ctx, "group/app"))
	err = registry.StartPreImport(ctx, "group/other")
	fmt.Println(errors.Is(err, enqueuer.ErrTooManyImports))
	// Output:
	// pre_importing <nil>
	// true
	// <nil>
	// true
}
