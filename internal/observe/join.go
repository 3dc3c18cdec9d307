package observe

// Join combines observers: nil ones are dropped, a single one left is
// returned as it is (no fan-out on the hot path), and otherwise fanOut
// wraps the rest, which it must tell in order.
func Join[O any](obs []O, fanOut func([]O) O) O {
	var list []O
	for _, o := range obs {
		if any(o) != nil {
			list = append(list, o)
		}
	}
	if len(list) == 1 {
		return list[0]
	}
	return fanOut(list)
}
