package schemas_test

import (
	"os"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	_ "github.com/parley-im/parley/schemas/parleyv1"
)

// TestDescriptorSetFresh fails when parley.binpb and the generated Go were
// not regenerated together (run `go tool task gen`).
func TestDescriptorSetFresh(t *testing.T) {
	b, err := os.ReadFile("parley.binpb")
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range set.GetFile() {
		d, err := protoregistry.GlobalFiles.FindFileByPath(f.GetName())
		if err != nil {
			t.Errorf("%s is in parley.binpb but not in the generated Go: %v", f.GetName(), err)
			continue
		}
		got := protodesc.ToFileDescriptorProto(d)
		want := proto.CloneOf(f)
		want.SourceCodeInfo = nil
		got.SourceCodeInfo = nil
		if !proto.Equal(got, want) {
			t.Errorf("%s differs between parley.binpb and the generated Go: regenerate both", f.GetName())
		}
		if d.Package() == "parley.v1" {
			seen++
		}
	}
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("parley.v1", func(protoreflect.FileDescriptor) bool { n++; return true })
	if seen != n {
		t.Errorf("parley.binpb has %d parley.v1 files, the generated Go %d", seen, n)
	}
}
