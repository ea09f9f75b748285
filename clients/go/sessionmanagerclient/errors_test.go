package sessionmanagerclient

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

var kinds = []error{
	ErrNotFound, ErrConflict, ErrInvalidArgument, ErrResourceExhausted, ErrUnavailable, ErrDeadlineExceeded,
	ErrCanceled, ErrClosed, ErrUnauthenticated, ErrPermissionDenied, ErrInternal, ErrUnknown,
}

func TestEveryStatusCodeHasOneKind(t *testing.T) {
	want := map[codes.Code]error{
		codes.OK:                 ErrUnknown,
		codes.Canceled:           ErrCanceled,
		codes.Unknown:            ErrUnknown,
		codes.InvalidArgument:    ErrInvalidArgument,
		codes.DeadlineExceeded:   ErrDeadlineExceeded,
		codes.NotFound:           ErrNotFound,
		codes.AlreadyExists:      ErrConflict,
		codes.PermissionDenied:   ErrPermissionDenied,
		codes.ResourceExhausted:  ErrResourceExhausted,
		codes.FailedPrecondition: ErrConflict,
		codes.Aborted:            ErrConflict,
		codes.OutOfRange:         ErrInvalidArgument,
		codes.Unimplemented:      ErrInternal,
		codes.Internal:           ErrInternal,
		codes.Unavailable:        ErrUnavailable,
		codes.DataLoss:           ErrInternal,
		codes.Unauthenticated:    ErrUnauthenticated,
		codes.Code(99):           ErrUnknown,
	}
	for code, kind := range want {
		err := error(callError("GetSession", status.Error(code, "why")))
		var matched []error
		for _, candidate := range kinds {
			if errors.Is(err, candidate) {
				matched = append(matched, candidate)
			}
		}
		if len(matched) != 1 || matched[0] != kind {
			t.Errorf("%v: matches %v, want only %v", code, matched, kind)
		}
		if status.Code(err) != code {
			t.Errorf("%v: status.Code(err) = %v", code, status.Code(err))
		}
	}
}

func TestContextErrors(t *testing.T) {
	deadline := error(callError("GetSession", context.DeadlineExceeded))
	if !errors.Is(deadline, ErrDeadlineExceeded) || !errors.Is(deadline, context.DeadlineExceeded) || errors.Is(deadline, context.Canceled) {
		t.Errorf("a context deadline: %v", deadline)
	}
	canceled := error(callError("GetSession", status.Error(codes.Canceled, "context canceled")))
	if !errors.Is(canceled, ErrCanceled) || !errors.Is(canceled, context.Canceled) || errors.Is(canceled, ErrClosed) {
		t.Errorf("a canceled call: %v", canceled)
	}
	closed := error(closedError("GetSession", nil))
	if !errors.Is(closed, ErrClosed) || !errors.Is(closed, ErrCanceled) || !errors.Is(closed, context.Canceled) || status.Code(closed) != codes.Canceled {
		t.Errorf("a closed client: %v", closed)
	}
}

func TestErrorKeepsTheStatusAndItsDetails(t *testing.T) {
	detailed, err := status.New(codes.ResourceExhausted, "session too large").WithDetails(durationpb.New(5))
	if err != nil {
		t.Fatal(err)
	}
	wrapped := fmt.Errorf("storing the quote: %w", callError("SetSession", detailed.Err()))
	var callErr *Error
	if !errors.As(wrapped, &callErr) {
		t.Fatalf("errors.As found no *Error in %v", wrapped)
	}
	if callErr.Method != "SetSession" || callErr.Code != codes.ResourceExhausted || callErr.Message != "session too large" {
		t.Errorf("fields: %+v", callErr)
	}
	if got := callErr.Error(); got != "sessionmanagerclient: SetSession: ResourceExhausted: session too large" {
		t.Errorf("Error() = %q", got)
	}
	if details := callErr.GRPCStatus().Details(); len(details) != 1 {
		t.Errorf("GRPCStatus lost the details: %v", details)
	}
	if !errors.Is(wrapped, ErrResourceExhausted) {
		t.Errorf("errors.Is through a wrap: %v", wrapped)
	}
}
