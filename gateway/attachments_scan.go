package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/parley-im/parley/gateway/scan"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// Outcomes of a virus scan (parley_gateway_scans_total).
const (
	scanClean    = "clean"
	scanInfected = "infected"
	scanFailed   = "failed"
)

// scan has the Scanner check the staged bytes, as uploaded, before any of
// them is stored. It fails closed: an infected file is refused INFECTED,
// and a scan without a verdict (the scanner unreachable, too slow, or
// refusing the size) is refused UNAVAILABLE, so nothing reaches the blob
// store unscanned. Without a Scanner it lets everything pass.
func (a *attachments) scan(ctx context.Context, st *staged) error {
	if a.cfg.Scanner == nil {
		return nil
	}
	f, err := st.open()
	if err != nil {
		return err
	}
	defer f.Close()
	t0 := time.Now()
	v, err := a.cfg.Scanner.Scan(ctx, f)
	m := a.srv.metrics
	m.scanSeconds.Observe(time.Since(t0).Seconds())
	switch {
	case err != nil:
		m.scans.WithLabelValues(scanFailed).Inc()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("virus scan failed: the upload is refused", "err", err, "size", st.size)
		if errors.Is(err, scan.ErrTooLarge) {
			return refuse(http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE,
				"the virus scanner cannot check a file of %d bytes; it was not stored", st.size)
		}
		return refuse(http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE,
			"the virus scanner could not check the file; it was not stored; retry")
	case v.Infected:
		m.scans.WithLabelValues(scanInfected).Inc()
		a.log.Info("infected upload refused", "signature", v.Signature, "sha256", st.sha256, "size", st.size)
		return refuse(http.StatusUnprocessableEntity, pb.ErrorCode_ERROR_CODE_INFECTED,
			"the virus scanner found %s in the file; it was not stored", v.Signature)
	}
	m.scans.WithLabelValues(scanClean).Inc()
	return nil
}
