package storagetest_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/storage/storagetest"
)

// Programs (not tests) start their own throwaway server.
func ExampleStart() {
	ctx := context.Background()
	server, err := storagetest.Start(ctx, storagetest.ServerOptions{})
	if err != nil {
		fmt.Println("no PostgreSQL here:", err)
		return
	}
	defer server.Stop()
	conn, err := pgx.Connect(ctx, server.URL("postgres"))
	if err != nil {
		panic(err)
	}
	defer conn.Close(ctx)
	var one int
	_ = conn.QueryRow(ctx, `SELECT 1`).Scan(&one)
	fmt.Println(one)
	// Output: 1
}
