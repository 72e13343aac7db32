package pushserver

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// decryptAES128GCM decrypts an RFC 8291 message (the aes128gcm content
// coding of RFC 8188) for the user agent holding ua and authSecret.
//
// The body is a header — salt (16 bytes), record size rs (4), key id
// length (1) and key id (the sender's ephemeral P-256 public key, 65) —
// then records of rs bytes (the last may be shorter). Keys (RFC 8291 §3.3,
// §3.4; RFC 8188 §2.2, §2.3):
//
//	ecdh_secret = ECDH(ua private, as public)
//	IKM   = HKDF(salt=auth_secret, ikm=ecdh_secret, info="WebPush: info"||0x00||ua_public||as_public, L=32)
//	PRK   = HKDF-Extract(salt, IKM)
//	CEK   = HKDF-Expand(PRK, "Content-Encoding: aes128gcm"||0x00, 16)
//	NONCE = HKDF-Expand(PRK, "Content-Encoding: nonce"||0x00, 12) XOR record sequence number
//
// Each record's plaintext ends with a delimiter (0x01, or 0x02 in the
// last record) followed by zero padding.
func decryptAES128GCM(body []byte, ua *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	const headerLen = 16 + 4 + 1
	if len(body) < headerLen {
		return nil, errors.New("shorter than the aes128gcm header")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idLen := int(body[20])
	if rs < 18 {
		return nil, fmt.Errorf("record size %d below 18", rs)
	}
	if idLen != 65 || len(body) < headerLen+idLen {
		return nil, fmt.Errorf("key id of %d bytes, want the sender's 65-byte P-256 public key", idLen)
	}
	asPublic := body[headerLen : headerLen+idLen]
	records := body[headerLen+idLen:]
	asKey, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return nil, errors.New("the key id is not a P-256 point")
	}
	secret, err := ua.ECDH(asKey)
	if err != nil {
		return nil, fmt.Errorf("ECDH: %w", err)
	}
	info := append([]byte("WebPush: info\x00"), ua.PublicKey().Bytes()...)
	info = append(info, asPublic...)
	ikm, err := hkdf.Key(sha256.New, secret, authSecret, string(info), 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(records) == 0 {
		return nil, errors.New("no records")
	}
	var out []byte
	for seq := uint64(0); len(records) > 0; seq++ {
		n := min(int(rs), len(records))
		rec := records[:n]
		records = records[n:]
		last := len(records) == 0
		iv := make([]byte, 12)
		copy(iv, nonce)
		var s [8]byte
		binary.BigEndian.PutUint64(s[:], seq)
		for i := range 8 {
			iv[4+i] ^= s[i]
		}
		plain, err := gcm.Open(nil, iv, rec, nil)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", seq, err)
		}
		end := len(plain) - 1
		for end >= 0 && plain[end] == 0 {
			end--
		}
		switch {
		case end < 0:
			return nil, fmt.Errorf("record %d: no padding delimiter", seq)
		case last && plain[end] != 2:
			return nil, fmt.Errorf("last record %d: delimiter 0x%02x, want 0x02", seq, plain[end])
		case !last && plain[end] != 1:
			return nil, fmt.Errorf("record %d: delimiter 0x%02x, want 0x01", seq, plain[end])
		}
		out = append(out, plain[:end]...)
	}
	return out, nil
}
