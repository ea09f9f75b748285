// Owners against the real service (in-memory store): SetSession with an
// Owner, ListSessions, RevokeSessions and the admin permission they need.
package sessionmanagerclient_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/sessionmanager/sessionmanager/clients/go/internal/testenv"
	"github.com/sessionmanager/sessionmanager/clients/go/sessionmanager"
	"github.com/sessionmanager/sessionmanager/clients/go/sessionmanagerclient"
)

const adminToken = "admin-token-0123456789abcdef"

func TestOwners(t *testing.T) {
	t.Parallel()
	server := testenv.StartServer(t, map[string]string{"AUTH_TOKENS": writeToken + ":write," + adminToken + ":admin"})
	ctx := context.Background()
	admin := newClient(t, sessionmanagerclient.WithAddress(server.Address()), sessionmanagerclient.WithBearerToken(adminToken))
	writer := newClient(t, sessionmanagerclient.WithAddress(server.Address()), sessionmanagerclient.WithBearerToken(writeToken))
	const owner = "rider-go-42"

	var keys []string
	for _, request := range [][]byte{[]byte("quote-1"), []byte("quote-2")} {
		created, err := writer.SetSessionWithResponse(ctx, &sessionmanager.SessionData{Owner: owner, FleetListRequest: request})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, created.SessionKey)
	}

	t.Run("ListSessions lists them oldest first, the content only when asked", func(t *testing.T) {
		listed, err := admin.ListSessions(ctx, &sessionmanager.ListSessionsRequest{Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		if len(listed.Sessions) != 2 || listed.Sessions[0].Handle == listed.Sessions[1].Handle {
			t.Fatalf("ListSessions = %v", listed)
		}
		if len(listed.Sessions[0].FleetListRequest) != 0 || listed.Sessions[0].SizeBytes != int64(len("quote-1")) {
			t.Errorf("without content: %v", listed.Sessions[0])
		}
		full, err := admin.ListSessions(ctx, &sessionmanager.ListSessionsRequest{Owner: owner, IncludeContent: true})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(full.Sessions[0].FleetListRequest, []byte("quote-1")) || !bytes.Equal(full.Sessions[1].FleetListRequest, []byte("quote-2")) {
			t.Errorf("with content: %v", full)
		}
	})

	t.Run("a write token may not list or revoke: ErrPermissionDenied", func(t *testing.T) {
		_, err := writer.ListSessions(ctx, &sessionmanager.ListSessionsRequest{Owner: owner})
		expectError(t, err, sessionmanagerclient.ErrPermissionDenied, "ListSessions", "admin")
		_, err = writer.RevokeSessions(ctx, &sessionmanager.RevokeSessionsRequest{Owner: owner})
		expectError(t, err, sessionmanagerclient.ErrPermissionDenied, "RevokeSessions", "admin")
	})

	t.Run("an empty owner fails with ErrInvalidArgument naming owner", func(t *testing.T) {
		_, err := admin.ListSessions(ctx, &sessionmanager.ListSessionsRequest{})
		expectError(t, err, sessionmanagerclient.ErrInvalidArgument, "ListSessions", "owner")
	})

	t.Run("RevokeSessions deletes them all and counts them", func(t *testing.T) {
		revoked, err := admin.RevokeSessions(ctx, &sessionmanager.RevokeSessionsRequest{Owner: owner})
		if err != nil || revoked.Revoked != 2 {
			t.Fatalf("RevokeSessions = %v, %v", revoked, err)
		}
		for _, key := range keys {
			_, err := admin.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key})
			expectError(t, err, sessionmanagerclient.ErrNotFound, "GetSession", "")
		}
	})
}
