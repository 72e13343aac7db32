package bus

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// toRecord maps a message onto a record: key from keyFn, payload as value,
// metadata as headers plus the UUID header.
func toRecord(topic string, msg *message.Message, keyFn KeyFunc) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(msg.Metadata)+1)
	headers = append(headers, kgo.RecordHeader{Key: HeaderUUID, Value: []byte(msg.UUID)})
	for k, v := range msg.Metadata {
		if k == HeaderUUID {
			continue
		}
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	value := []byte(msg.Payload)
	if value == nil {
		// A null value is a tombstone to a compacted topic: an empty
		// message must not delete its key.
		value = []byte{}
	}
	return &kgo.Record{
		Topic:   topic,
		Key:     keyFn(topic, msg),
		Value:   value,
		Headers: headers,
	}
}

// toMessage maps a consumed record back onto a message. Records written by
// plain Kafka producers (ingest's own, say) carry no UUID header; they get
// "topic/partition/offset", which names the record uniquely and stays the same
// on redelivery, so consumers can still deduplicate by UUID.
func toMessage(rec *kgo.Record) *message.Message {
	uuid := ""
	meta := make(message.Metadata, len(rec.Headers)+3)
	for _, h := range rec.Headers {
		if h.Key == HeaderUUID {
			uuid = string(h.Value)
			continue
		}
		meta[h.Key] = string(h.Value)
	}
	if uuid == "" {
		uuid = rec.Topic + "/" + strconv.FormatInt(int64(rec.Partition), 10) + "/" + strconv.FormatInt(rec.Offset, 10)
	}
	// Set after the headers: what the broker says wins over a header that
	// happens to share the name.
	meta[MetaPartition] = strconv.FormatInt(int64(rec.Partition), 10)
	meta[MetaOffset] = strconv.FormatInt(rec.Offset, 10)
	meta[MetaPartitionKey] = string(rec.Key)
	msg := message.NewMessage(uuid, rec.Value)
	msg.Metadata = meta
	return msg
}
