// Package blob stores the bytes of attachments (files, images, voice notes).
// It owns only bytes under keys: what an attachment is, who sent it and where
// it belongs are facts in the event log, and nothing here reads or writes the
// log or the views.
//
// A Store has two backends, chosen by Config (PARLEY_BLOB_BACKEND):
//
//   - Dir keeps each blob as one plain file under a data directory. It is the
//     default, for one machine and for development.
//   - S3 keeps each blob as one object in a bucket of any S3-compatible store
//     (AWS S3, MinIO, Ceph RGW, Versity Gateway, Garage, R2 …).
//
// # Keys
//
// Callers name blobs by their content: Key(namespace, sha256hex) gives
// "<namespace>/sha256/<first two hex digits>/<hex>". Two uploads of the same
// key carry the same bytes, so a Put onto an existing key simply replaces it
// and concurrent Puts of one key are harmless: whichever lands last wins, and
// both wrote the same bytes. Any key a Store accepts is one to 1,024 bytes of
// '/'-separated segments of letters, digits, '.', '_' and '-', no segment
// empty or starting with '.', so a key is always a safe relative path.
//
// # Crash behaviour
//
// A Put is all or nothing: a reader that fails, a context that ends, a size
// that does not match, or a crash of the process or the machine mid-Put never
// leaves a partial blob visible under its key. Either the old blob (or none)
// or the whole new one is there.
//
//   - Dir writes into a temporary file in the data directory's .tmp
//     directory, fsyncs it, renames it onto the key and fsyncs the directory
//     (and every directory it had to create), so a Put that returned nil
//     survives a power cut. A crash leaves at most an orphaned temporary
//     file, which NewDir removes once it is an hour old (an upload in
//     progress keeps writing its file, so it never looks that old).
//   - S3 relies on the store: an object becomes visible only when its single
//     PUT or the completion of its multipart upload succeeds. A failed Put
//     aborts its multipart upload; a crashed process leaves an incomplete
//     multipart upload, invisible and billed by some providers, which a
//     bucket lifecycle rule (AbortIncompleteMultipartUpload) removes.
//
// Touch and a later garbage collector use the modification time: a Put of
// an existing key and Touch both make it now, so a collector that deletes
// only blobs older than some age never deletes one just uploaded again.
//
// # Why plain files rather than chunks in Cassandra
//
// Attachments are large (up to hundreds of MiB) and read in ranges (a video
// seeked to the middle, a resumed download). A file streams in and out
// without ever being held in memory, answers a Range request with one
// ReadAt (http.ServeContent does it from an Object), and costs nothing on
// the views' Cassandra, which is the system's bottleneck and should spend
// its compaction and its heap on messages, not on megabytes of image data
// split into rows. A directory of files is also backed up, restored and
// moved with the tools every operator has (rsync, snapshots, a copy to an
// S3 bucket later). Each file holds exactly the blob's bytes, so
// `sha256sum` of a file equals its name; the content type rides along in
// the file's extended attribute user.parley.content_type, set before the
// rename, so it is atomic with the bytes (the data directory must be on a
// filesystem with user extended attributes: ext4, xfs, btrfs, zfs do).
//
// # Why minio-go rather than the AWS SDK
//
// github.com/minio/minio-go/v7 is one module with a small dependency tree
// (the AWS SDK v2 is a dozen modules for S3 alone); its PutObject streams a
// reader of unknown size as a multipart upload holding one part in memory;
// and it is written for, and tested against, every S3-compatible server,
// with path-style addressing for endpoints that are not AWS. The S3 backend
// sets the part size (8 MiB by default, so objects up to 80 GiB), which is
// also what one Put of unknown size or larger than a part holds in memory.
package blob
