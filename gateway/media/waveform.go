package media

// waveform sums compressed packet sizes into bars of equal time.
type waveform struct {
	sum []uint64
	n   []uint32
}

func newWaveform(bars int) *waveform {
	return &waveform{sum: make([]uint64, bars), n: make([]uint32, bars)}
}

// add counts a packet of size bytes at pos, a fraction of the duration.
func (w *waveform) add(pos float64, size int) {
	i := int(pos * float64(len(w.sum)))
	i = min(max(i, 0), len(w.sum)-1)
	w.sum[i] += uint64(size)
	w.n[i]++
}

// values are the mean packet size per bar, scaled so the smallest is 0
// and the largest 255 (all 255 when they are equal); a bar without a
// packet (a file shorter than its bars) repeats the one before it. Nil
// when no packet was counted.
func (w *waveform) values() []byte {
	mean := make([]float64, len(w.sum))
	last := -1.0
	for i := range mean {
		if w.n[i] > 0 {
			mean[i] = float64(w.sum[i]) / float64(w.n[i])
			last = mean[i]
		} else {
			mean[i] = last
		}
	}
	first := -1.0
	for _, m := range mean {
		if m >= 0 {
			first = m
			break
		}
	}
	if first < 0 {
		return nil
	}
	lo, hi := first, first
	for i, m := range mean {
		if m < 0 {
			mean[i] = first // bars before the first packet
			continue
		}
		lo, hi = min(lo, m), max(hi, m)
	}
	out := make([]byte, len(mean))
	for i, m := range mean {
		if hi == lo {
			out[i] = 255
		} else {
			out[i] = byte((m-lo)/(hi-lo)*255 + 0.5)
		}
	}
	return out
}
