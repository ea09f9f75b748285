package sessionmanagerclient

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/grpc/resolver"
)

// target is where the client's one grpc.ClientConn connects.
type target struct {
	// name is the gRPC target given to grpc.Dial.
	name string
	// addresses, when set, are served to the ClientConn by a static resolver
	// (name then uses its scheme).
	addresses []string
	// roundRobin spreads calls over every address; otherwise grpc-go's
	// default, pick_first, keeps one connection.
	roundRobin bool
}

const staticScheme = "sessionmanager-addresses"

func resolveTarget(o *options) (target, error) {
	if o.addresses != nil {
		if o.host != "" || o.port != 0 || o.address != "" {
			return target{}, optionError("WithAddresses goes alone, without WithHost, WithPort or WithAddress")
		}
		return addressesTarget(o.addresses)
	}
	if o.address != "" {
		if o.host != "" || o.port != 0 {
			return target{}, optionError("WithAddress goes alone, without WithHost or WithPort")
		}
		return target{name: o.address}, nil
	}
	if o.host == "" {
		return target{}, optionError("give WithHost (and WithPort), WithAddress or WithAddresses")
	}
	port := o.port
	if port == 0 {
		port = defaultPort
	}
	if port < 1 || port > 65535 {
		return target{}, optionError(fmt.Sprintf("WithPort must be 1-65535, got %d", port))
	}
	return target{name: net.JoinHostPort(o.host, strconv.Itoa(port))}, nil
}

// addressesTarget balances round robin over the entries. One hostname becomes
// a dns:/// target, so that every address the name resolves to (e.g. a
// Kubernetes headless service) gets a connection; anything else is a static
// list with one connection per entry.
func addressesTarget(entries []string) (target, error) {
	if len(entries) == 0 {
		return target{}, optionError(`WithAddresses needs at least one "host:port"`)
	}
	addresses := make([]string, len(entries))
	hostnames := 0
	for i, entry := range entries {
		hostPort, hostname, err := parseAddress(entry)
		if err != nil {
			return target{}, optionError(fmt.Sprintf(`WithAddresses[%d] must be "host:port" or "[ipv6]:port" (%s), got %q`, i, err, entry))
		}
		for j := 0; j < i; j++ {
			if addresses[j] == hostPort {
				return target{}, optionError(fmt.Sprintf("WithAddresses[%d] repeats WithAddresses[%d] (%s)", i, j, hostPort))
			}
		}
		addresses[i] = hostPort
		if hostname {
			hostnames++
		}
	}
	if len(addresses) == 1 && hostnames == 1 {
		return target{name: "dns:///" + addresses[0], roundRobin: true}, nil
	}
	return target{name: staticScheme + ":///sessionmanager", addresses: addresses, roundRobin: true}, nil
}

var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$`)

// parseAddress checks one "host:port" entry (the port defaults to 6027) and
// returns it normalised, and whether its host is a name rather than an IP.
func parseAddress(entry string) (hostPort string, hostname bool, err error) {
	if strings.Contains(entry, "/") {
		return "", false, fmt.Errorf("no scheme or path; use WithAddress for a raw gRPC target")
	}
	host, portText := entry, ""
	if strings.HasPrefix(entry, "[") {
		end := strings.Index(entry, "]")
		if end < 0 {
			return "", false, fmt.Errorf("an unclosed bracket")
		}
		host = entry[1:end]
		rest := entry[end+1:]
		if rest != "" && !strings.HasPrefix(rest, ":") {
			return "", false, fmt.Errorf("not a host and port")
		}
		portText = strings.TrimPrefix(rest, ":")
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return "", false, fmt.Errorf("not an IPv6 literal in the brackets")
		}
	} else if colon := strings.LastIndex(entry, ":"); colon >= 0 {
		if strings.Count(entry, ":") > 1 {
			return "", false, fmt.Errorf("an IPv6 literal needs brackets")
		}
		host, portText = entry[:colon], entry[colon+1:]
	}
	port := defaultPort
	if portText != "" {
		port, err = strconv.Atoi(portText)
		if err != nil || port < 1 || port > 65535 {
			return "", false, fmt.Errorf("the port must be 1-65535")
		}
	}
	if host == "" {
		return "", false, fmt.Errorf("no host")
	}
	isIP := net.ParseIP(host) != nil
	if !isIP && !hostnamePattern.MatchString(host) {
		return "", false, fmt.Errorf("not a valid hostname")
	}
	if !isIP {
		host = strings.ToLower(host)
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), !isIP, nil
}

// staticResolver gives a ClientConn a fixed list of addresses. A hostname in
// the list is resolved by the dialer at each connection attempt.
type staticResolver struct {
	addresses []string
}

func (r staticResolver) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	state := resolver.State{Addresses: make([]resolver.Address, len(r.addresses))}
	for i, address := range r.addresses {
		state.Addresses[i] = resolver.Address{Addr: address}
	}
	cc.UpdateState(state)
	return r, nil
}

func (staticResolver) Scheme() string                        { return staticScheme }
func (staticResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (staticResolver) Close()                                {}
