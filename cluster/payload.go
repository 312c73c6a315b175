package cluster

import (
	"sync/atomic"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// payloadMeter is a PayloadCodec that changes nothing and remembers the largest payload it
// has seen: pipe sends only keys and small records through Temporal (which caps a payload at
// 2 MB and warns above 256 KB), and the manifest says how large they were.
type payloadMeter struct{ largest atomic.Int64 }

func (m *payloadMeter) see(ps []*commonpb.Payload) {
	for _, p := range ps {
		n := int64(len(p.GetData()))
		for _, v := range p.GetMetadata() {
			n += int64(len(v))
		}
		for {
			cur := m.largest.Load()
			if n <= cur || m.largest.CompareAndSwap(cur, n) {
				break
			}
		}
	}
}

// Encode implements converter.PayloadCodec.
func (m *payloadMeter) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	m.see(ps)
	return ps, nil
}

// Decode implements converter.PayloadCodec.
func (m *payloadMeter) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	m.see(ps)
	return ps, nil
}

func (m *payloadMeter) max() int {
	if m == nil {
		return 0
	}
	return int(m.largest.Load())
}

// dataConverter is Temporal's default converter, metered.
func (m *payloadMeter) dataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), m)
}
