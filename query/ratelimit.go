package query

import (
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters hold one token bucket per user, shared by all of the user's
// devices and requests on this query process: RatePerSecond requests a
// second on average, Burst at once. A request over it is answered 429
// RATE_LIMITED with Retry-After. Buckets of users idle long enough to be
// full again are dropped when the map grows past maxLimiters.
type limiters struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	users map[string]*rate.Limiter
}

// maxLimiters bounds the buckets kept before the full ones are dropped.
const maxLimiters = 100_000

func newLimiters(perSecond float64, burst int) *limiters {
	if perSecond < 0 {
		return nil
	}
	return &limiters{rate: rate.Limit(perSecond), burst: burst, users: map[string]*rate.Limiter{}}
}

// allow takes a token of user's bucket; when there is none it says how
// long until there is.
func (l *limiters) allow(user string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	lim := l.users[user]
	if lim == nil {
		if len(l.users) >= maxLimiters {
			for u, other := range l.users {
				if other.TokensAt(now) >= float64(l.burst) {
					delete(l.users, u)
				}
			}
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		l.users[user] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// retryAfter is d in whole seconds, at least 1, for a Retry-After header.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
