package query

import (
	"encoding/base64"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas/parleyv1"
)

// attachmentItem is an attachment of a message in history: what the log
// recorded of it, and the gateway paths that serve it (a token, or a signed
// URL from its /url path, is needed to fetch them).
type attachmentItem struct {
	ID           string         `json:"id"`
	Kind         string         `json:"kind"` // file, image, audio, video
	ContentType  string         `json:"content_type"`
	Name         string         `json:"name,omitempty"`
	Size         int64          `json:"size"`
	SHA256       string         `json:"sha256"`
	Image        *imageInfo     `json:"image,omitempty"`
	Audio        *audioInfo     `json:"audio,omitempty"`
	Video        *videoInfo     `json:"video,omitempty"`
	Thumbnail    *thumbnailInfo `json:"thumbnail,omitempty"`
	DownloadPath string         `json:"download_path"`
}

type imageInfo struct {
	Width            int    `json:"width"`
	Height           int    `json:"height"`
	LocationStripped bool   `json:"location_stripped,omitempty"`
	Placeholder      string `json:"placeholder,omitempty"` // base64
}

type audioInfo struct {
	DurationMS int64 `json:"duration_ms"`
	Waveform   []int `json:"waveform,omitempty"` // values 0-255
}

type videoInfo struct {
	DurationMS int64 `json:"duration_ms"`
	Width      int   `json:"width"`
	Height     int   `json:"height"`
}

type thumbnailInfo struct {
	ContentType  string `json:"content_type"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	Size         int64  `json:"size"`
	DownloadPath string `json:"download_path"`
}

func attachmentOf(conv string, a *parleyv1.Attachment) attachmentItem {
	path := "/v1/conversations/" + conv + "/attachments/" + a.GetAttachmentId()
	it := attachmentItem{ID: a.GetAttachmentId(), Kind: projector.AttachmentKindName(a.GetKind()), ContentType: a.GetContentType(),
		Name: a.GetName(), Size: a.GetSize(), SHA256: a.GetSha256(), DownloadPath: path}
	if im := a.GetImage(); im != nil {
		it.Image = &imageInfo{Width: int(im.GetWidth()), Height: int(im.GetHeight()), LocationStripped: im.GetLocationStripped()}
		if p := im.GetPlaceholder(); len(p) > 0 {
			it.Image.Placeholder = base64.StdEncoding.EncodeToString(p)
		}
	}
	if au := a.GetAudio(); au != nil {
		it.Audio = &audioInfo{DurationMS: au.GetDurationMs()}
		for _, b := range au.GetWaveform() {
			it.Audio.Waveform = append(it.Audio.Waveform, int(b))
		}
	}
	if v := a.GetVideo(); v != nil {
		it.Video = &videoInfo{DurationMS: v.GetDurationMs(), Width: int(v.GetWidth()), Height: int(v.GetHeight())}
	}
	if th := a.GetThumbnail(); th != nil {
		it.Thumbnail = &thumbnailInfo{ContentType: th.GetContentType(), Width: int(th.GetWidth()), Height: int(th.GetHeight()), Size: th.GetSize(),
			DownloadPath: path + "?variant=thumbnail"}
	}
	return it
}
