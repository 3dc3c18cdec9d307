package observe

import "context"

// startsKey keys the contexts a fan-out's Start collected from its
// members. One key serves every fan-out: the nearest value in a context is
// always the one of the fan-out whose Start returned it, since a nested
// operation's Start shadows its parent's.
type startsKey struct{}

// Start calls start on each of list in order, each with the context the
// previous one returned (so a span one member starts is the parent of the
// next member's), and returns the last context carrying all of them for
// End.
func Start[O any](ctx context.Context, list []O, start func(O, context.Context) context.Context) context.Context {
	ctxs := make([]context.Context, len(list))
	for i, o := range list {
		ctx = start(o, ctx)
		ctxs[i] = ctx
	}
	return context.WithValue(ctx, startsKey{}, ctxs)
}

// End calls end on each of list in reverse order, each with the context
// its own Start returned, found in ctx (the context Start returned). If
// ctx did not come from Start over list, every member gets ctx.
func End[O any](ctx context.Context, list []O, end func(O, context.Context)) {
	ctxs, _ := ctx.Value(startsKey{}).([]context.Context)
	if len(ctxs) != len(list) {
		ctxs = nil
	}
	for i := len(list) - 1; i >= 0; i-- {
		c := ctx
		if ctxs != nil {
			c = ctxs[i]
		}
		end(list[i], c)
	}
}

// CallStart calls f, an ObserverFuncs field for a Start hook, when it is
// set; a nil f returns ctx unchanged.
func CallStart[E any](f func(context.Context, E) context.Context, ctx context.Context, e E) context.Context {
	if f == nil {
		return ctx
	}
	return f(ctx, e)
}

// Call calls f, an ObserverFuncs field for an End hook or a point event,
// when it is set.
func Call[E any](f func(context.Context, E), ctx context.Context, e E) {
	if f != nil {
		f(ctx, e)
	}
}
