//! Conformance: meshsim's verdicts against Istio's. One row per case — the mode, the client pod,
//! the request (real curl, or raw TCP through bash's /dev/tcp, inside the pod), the outcome a
//! user would see, and the Istio source that says so. The cluster is
//! `tests/conformance/mixed.yaml` with `policies.yaml`: a sidecar namespace (`side`), an ambient
//! one (`amb`, with `amb-waypoint`), one out of the mesh (`plain`), one whose pods use a workload
//! waypoint (`wl`) and one whose service uses a waypoint in another namespace (`xns`).
//!
//! Sources are cited by file in istio/istio (1.24 behaviour) or istio/ztunnel, or by istio.io
//! page. Needs root or unprivileged user namespaces; under `CI` a missing privilege fails.

mod common;

use std::fmt::Write as _;
use std::sync::Mutex;

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// What a client does.
#[derive(Debug, Clone, Copy)]
enum Req {
    /// curl: method, URL, extra curl arguments (`{good}`, `{expired}` … stand for tokens).
    Http(&'static str, &'static str, &'static [&'static str]),
    /// Raw TCP: connect, send `ping`, read 4 bytes back.
    Tcp(&'static str, u16),
}

/// What the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// An HTTP status.
    Status(u16),
    /// An HTTP status whose body starts with this.
    Says(u16, &'static str),
    /// The connection ends with no reply: reset or closed (curl exit 52 or 56; TCP: no echo).
    Closed,
    /// The TCP bytes came back.
    Echo,
}

struct Case {
    mode: &'static str,
    from: &'static str,
    req: Req,
    want: Want,
    /// The Istio source of the expected outcome.
    source: &'static str,
}

const fn get(url: &'static str) -> Req {
    Req::Http("GET", url, &[])
}

const fn c(
    mode: &'static str,
    from: &'static str,
    req: Req,
    want: Want,
    source: &'static str,
) -> Case {
    Case {
        mode,
        from,
        req,
        want,
        source,
    }
}

use Want::*;

const D: &str = "declared";
const SC: &str = "s-client-0";
const AC: &str = "a-client-0";
const PC: &str = "p-client-0";

const MTLS_AUTO: &str = "pilot/pkg/xds/endpoints/endpoint_builder.go: sidecar to sidecar keeps legacy mTLS (tlsMode istio, PILOT_PREFER_SENDING_HBONE off)";
const HBONE_TO_AMBIENT: &str = "pilot/pkg/features/ambient.go PILOT_ENABLE_SENDING_HBONE; endpoint_builder.go supportTunnel: a sidecar sends HBONE to a pod captured by ztunnel";
const HBONE_TO_SIDECAR: &str = "manifests/helm-profiles/ambient.yaml ISTIO_META_ENABLE_HBONE + injection-template.yaml tunnel label; ambient/workloads.go setTunnelProtocol: ztunnel tunnels HBONE into a sidecar";
const PERMISSIVE: &str = "pilot/pkg/security/authn/policy_applier.go ComposePeerAuthentication: PERMISSIVE by default, plaintext accepted";
const STRICT: &str = "istio.io PeerAuthentication reference: STRICT refuses plaintext (ztunnel and sidecar reset it)";
const PORT_LEVEL: &str = "policy_applier.go ComposePeerAuthentication: portLevelMtls of the workload policy overrides its mode for that port";
const DISABLE: &str = "endpoint_builder.go: with mTLS disabled at the destination the endpoint's tlsMode is cleared, so the sidecar client sends plaintext (no peer identity)";
const NO_ID: &str = "istio.io Authorization Policy reference: principals and namespaces need mTLS; plaintext carries no identity";
const TARGETREFS: &str = "istio.io Authorization Policy reference (targetRefs): a policy with targetRefs binds to waypoints/gateways only; sidecars and ztunnel ignore it";
const L7_DENY: &str = "pilot/pkg/security/authz/builder: L7 DENY at a sidecar/waypoint answers 403 RBAC: access denied";
const ALLOW_NOMATCH: &str = "istio.io Authorization Policy reference: with ALLOW policies, a request no rule matches is denied";
const ZT_DENY_HTTP_ONLY: &str = "pilot/pkg/serviceregistry/ambient/authorization.go handleRule + istio/ztunnel src/rbac.rs matches: an entry with only HTTP attributes (incl. remoteIpBlocks) becomes an empty match, which never matches, so that DENY rule is a no-op";
const ZT_DENY_MIXED: &str = "pilot/pkg/serviceregistry/ambient/authorization.go handleRule: for ztunnel an operation mixing ports and methods keeps only its ports (a wider DENY)";
const ZT_RESET: &str = "istio/ztunnel src/proxy/inbound.rs: a CONNECT refused by RBAC gets 401; the sidecar client's Envoy answers 503 (upstream reset before headers)";
const SIDECAR_NO_WAYPOINT: &str = "endpoint_builder.go (service waypoints comment): a sidecar sends to the workload, not through the service's waypoint";
const WP_IDENTITY: &str = "istio.io 'Use waypoint proxies': the destination ztunnel sees the waypoint's identity; no free pass (PILOT_AUTO_ALLOW_WAYPOINT_POLICY off, features/ambient.go) — the waypoint answers 503";
const WP_L7: &str = "istio.io 'Use waypoint proxies': a waypoint enforces L7 policies bound with targetRefs to its Service or Gateway";
const WP_WORKLOAD: &str = "istio.io 'Configure waypoint proxies': istio.io/waypoint-for workload — traffic to a pod IP goes through the workload waypoint; a service gets none from it";
const WP_XNS: &str = "istio.io 'Configure waypoint proxies': istio.io/use-waypoint-namespace uses a waypoint in another namespace";
const PLAIN_OUT: &str =
    "endpoint_builder.go / ztunnel passthrough: a destination out of the mesh gets plaintext";
const JWT_NONE: &str = "istio.io RequestAuthentication reference: a request without a token is accepted; the ALLOW on requestPrincipals then refuses it (403)";
const JWT_BAD: &str = "envoy jwt_authn: an invalid token is refused with 401";
const TCP_DENY_WIDER: &str = "pilot/pkg/security/authz/builder (TCP filter chain): a DENY's HTTP-only keys are dropped, so it gets wider";
const TCP_ALLOW_SKIP: &str = "pilot/pkg/security/authz/builder (TCP filter chain): ALLOW rules with HTTP keys are skipped, so nothing allows";
const TEMPLATES: &str =
    "pilot/pkg/security/authz/matcher: path templates {*} (one segment) and {**} (the rest)";
const NORMALIZE: &str =
    "istio.io security best practices, path normalization BASE: /a/../b is /b before policy";
const CUSTOM_DENY: &str = "envoy ext_authz (HTTP service): a non-200 from the authorizer is the client's answer; Istio runs CUSTOM before DENY and ALLOW";
const CUSTOM_ALLOW: &str = "envoy ext_authz: a 200 from the authorizer lets the request go on";
const JWT_PREFIX: &str = "envoy jwt_authn extractor.cc: the Authorization header counts only with its `Bearer ` prefix; otherwise no token, and the ALLOW on requestPrincipals refuses (403)";
const JWT_PARAM: &str = "envoy jwt_authn extractor.cc: with no fromHeaders/fromParams, the access_token query parameter is a default location";
const JWT_EXPIRED: &str =
    "envoy jwt_authn status.cc: `Jwt is expired` (past exp + 60 s clock skew), 401";
const CLAIMS: &str = "istio.io Authorization Policy Conditions: request.auth.claims[groups] matches any element of a list claim";
const PRESENTER: &str =
    "istio.io Authorization Policy Conditions: request.auth.presenter is the token's azp claim";
const JWT_HEADER: &str = "istio.io RequestAuthentication jwtRules.fromHeaders (name, prefix): given locations replace the defaults (envoy extractor.cc)";
const JWT_COOKIE: &str = "istio.io RequestAuthentication jwtRules.fromCookies (envoy extractor.cc)";
const JWT_AUD: &str =
    "envoy jwt_authn status.cc / filter.cc: `Audiences in Jwt are not allowed` is answered 403";
const JWT_ISS: &str = "envoy jwt_authn status.cc: `Jwt issuer is not configured`, 401";
const JWT_SKEW: &str =
    "envoy jwt_authn: 60 s clock skew by default, a token 30 s past exp is still valid";
const GATEWAY_CLASS: &str = "istio.io Authorization Policy reference (targetRefs GatewayClass istio-waypoint from the root namespace: every waypoint; Istio 1.26+, where 1.24 rejects the kind)";
const POD_WAYPOINT: &str = "istio.io 'Configure waypoint proxies': istio.io/use-waypoint on a pod (with use-waypoint-namespace) sends traffic to its IP through that workload waypoint";
const CONDITIONS: &str = "istio.io Authorization Policy Conditions: remote.ip (the direct peer with numTrustedProxies 0) and destination.ip";
const SERVICE_ACCOUNTS: &str =
    "istio.io Authorization Policy reference: source.serviceAccounts (Istio 1.25+)";
const OVERRIDE: &str =
    "meshsim: override modes put every pod in one data plane ('what if everything were X')";
const SEL_L7_AMBIENT: &str = "istio.io 'Use waypoint proxies': selector policies with L7 rules cannot be enforced by ztunnel; their ALLOW rules never match there, and waypoint traffic is refused (503)";

const CASES: &[Case] = &[
    // --- sidecar destination (s-echo: ALLOW /open/*, /id/<who> by identity; DENY DELETE) ---
    c(
        D,
        SC,
        get("http://s-echo.side:8080/open/x"),
        Status(200),
        MTLS_AUTO,
    ),
    c(
        D,
        SC,
        get("http://s-echo.side:8080/id/side"),
        Status(200),
        MTLS_AUTO,
    ),
    c(
        D,
        AC,
        get("http://s-echo.side:8080/id/amb"),
        Status(200),
        HBONE_TO_SIDECAR,
    ),
    c(
        D,
        AC,
        get("http://s-echo.side:8080/id/side"),
        Says(403, "RBAC: access denied"),
        ALLOW_NOMATCH,
    ),
    c(
        D,
        PC,
        get("http://s-echo.side:8080/open/x"),
        Status(200),
        PERMISSIVE,
    ),
    c(
        D,
        PC,
        get("http://s-echo.side:8080/id/plain"),
        Status(403),
        NO_ID,
    ),
    c(
        D,
        SC,
        Req::Http("DELETE", "http://s-echo.side:8080/open/x", &[]),
        Says(403, "RBAC: access denied"),
        L7_DENY,
    ),
    c(
        D,
        SC,
        get("http://s-echo.side:8080/elsewhere"),
        Status(403),
        ALLOW_NOMATCH,
    ),
    c(
        D,
        PC,
        Req::Http(
            "GET",
            "http://s-echo.side:8080/open/../id/side",
            &["--path-as-is"],
        ),
        Status(403),
        NORMALIZE,
    ),
    // s-echo-by-targetref (DENY everything, bound to the Service) changes nothing at the sidecar.
    c(
        D,
        SC,
        get("http://s-echo.side:8080/open/targetref"),
        Status(200),
        TARGETREFS,
    ),
    // --- ambient destinations ---
    c(
        D,
        SC,
        get("http://a-l4.amb:8080/"),
        Status(200),
        HBONE_TO_AMBIENT,
    ),
    c(
        D,
        AC,
        get("http://a-l4.amb:8080/"),
        Status(200),
        "ztunnel L4 ALLOW on principals (src/rbac.rs)",
    ),
    c(D, PC, get("http://a-l4.amb:8080/"), Closed, NO_ID),
    c(
        D,
        AC,
        get("http://a-echo.amb:8080/"),
        Status(200),
        TARGETREFS,
    ),
    c(
        D,
        AC,
        Req::Http("DELETE", "http://a-echo.amb:8080/", &[]),
        Status(200),
        ZT_DENY_HTTP_ONLY,
    ),
    c(
        D,
        PC,
        get("http://a-echo.amb:8080/"),
        Status(200),
        ZT_DENY_HTTP_ONLY,
    ),
    c(
        D,
        SC,
        get("http://a-echo.amb:8080/"),
        Status(200),
        HBONE_TO_AMBIENT,
    ),
    c(
        D,
        SC,
        get("http://a-open.amb:8080/"),
        Status(503),
        ZT_DENY_MIXED,
    ),
    c(
        D,
        AC,
        Req::Http("POST", "http://a-open.amb:8080/", &[]),
        Status(200),
        ZT_DENY_MIXED,
    ),
    c(
        D,
        PC,
        get("http://a-open.amb:8080/"),
        Status(200),
        PERMISSIVE,
    ),
    // --- PeerAuthentication ---
    c(D, PC, get("http://a-strict.amb:8080/"), Closed, STRICT),
    c(
        D,
        SC,
        get("http://a-strict.amb:8080/"),
        Status(200),
        HBONE_TO_AMBIENT,
    ),
    c(D, AC, get("http://a-strict.amb:8080/"), Status(200), STRICT),
    c(D, PC, get("http://s-strict.side:8080/"), Closed, STRICT),
    c(
        D,
        AC,
        get("http://s-strict.side:8080/"),
        Status(200),
        HBONE_TO_SIDECAR,
    ),
    c(
        D,
        SC,
        get("http://s-strict.side:8080/"),
        Status(200),
        MTLS_AUTO,
    ),
    c(
        D,
        PC,
        get("http://a-port.amb:8080/"),
        Status(200),
        PORT_LEVEL,
    ),
    c(D, PC, get("http://s-port.side:8080/"), Closed, PORT_LEVEL),
    c(
        D,
        SC,
        get("http://s-disable.side:8080/"),
        Status(200),
        DISABLE,
    ),
    c(
        D,
        AC,
        get("http://s-disable.side:8080/"),
        Status(403),
        HBONE_TO_SIDECAR,
    ),
    c(
        D,
        PC,
        get("http://s-disable.side:8080/"),
        Status(200),
        DISABLE,
    ),
    // --- waypoints ---
    c(D, AC, get("http://a-wp.amb:8080/"), Status(200), WP_L7),
    c(
        D,
        AC,
        Req::Http("POST", "http://a-wp.amb:8080/", &[]),
        Says(403, "RBAC: access denied"),
        WP_L7,
    ),
    c(
        D,
        SC,
        Req::Http("POST", "http://a-wp.amb:8080/", &[]),
        Status(200),
        SIDECAR_NO_WAYPOINT,
    ),
    c(
        D,
        AC,
        get("http://a-wp2.amb:8080/"),
        Status(503),
        WP_IDENTITY,
    ),
    c(D, SC, get("http://a-wp2.amb:8080/"), Status(503), ZT_RESET),
    c(
        D,
        AC,
        get("http://a-wp.amb:8080/deny-at-amb-waypoint"),
        Status(403),
        WP_L7,
    ),
    c(
        D,
        AC,
        get("http://x-echo.xns:8080/deny-at-amb-waypoint"),
        Status(403),
        WP_XNS,
    ),
    c(D, AC, get("http://x-echo.xns:8080/ok"), Status(200), WP_XNS),
    c(
        D,
        AC,
        get("http://w-echo-0:8080/blocked"),
        Status(403),
        WP_WORKLOAD,
    ),
    c(
        D,
        AC,
        get("http://w-echo-0:8080/ok"),
        Status(200),
        WP_WORKLOAD,
    ),
    c(
        D,
        AC,
        get("http://w-echo.wl:8080/blocked"),
        Status(200),
        WP_WORKLOAD,
    ),
    // --- JWT at the waypoint (a-jwt) ---
    c(
        D,
        AC,
        get("http://a-jwt.amb:8080/"),
        Says(403, "RBAC: access denied"),
        JWT_NONE,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-jwt.amb:8080/",
            &["-H", "authorization: Bearer {good}"],
        ),
        Status(200),
        "istio.io RequestAuthentication: a valid token sets request.auth.principal <iss>/<sub>",
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-jwt.amb:8080/",
            &["-H", "authorization: Bearer {forged}"],
        ),
        Says(401, "Jwt verification fails"),
        JWT_BAD,
    ),
    // --- out of the mesh destination ---
    c(
        D,
        SC,
        get("http://p-echo.plain:8080/"),
        Status(200),
        PLAIN_OUT,
    ),
    c(
        D,
        AC,
        get("http://p-echo.plain:8080/"),
        Status(200),
        PLAIN_OUT,
    ),
    c(
        D,
        PC,
        get("http://p-echo.plain:8080/"),
        Status(200),
        "no mesh on either side: kube-proxy's DNAT",
    ),
    // --- raw TCP ---
    c(D, SC, Req::Tcp("s-tcp.side", 9000), Echo, MTLS_AUTO),
    c(D, AC, Req::Tcp("s-tcp.side", 9000), Closed, TCP_DENY_WIDER),
    c(D, PC, Req::Tcp("s-tcp.side", 9000), Echo, PERMISSIVE),
    c(D, SC, Req::Tcp("s-tcp2.side", 9000), Closed, TCP_ALLOW_SKIP),
    c(
        D,
        AC,
        Req::Tcp("a-tcp.amb", 9000),
        Echo,
        "ztunnel L4: no policy, allowed",
    ),
    c(D, SC, Req::Tcp("a-tcp.amb", 9000), Echo, HBONE_TO_AMBIENT),
    c(D, PC, Req::Tcp("a-tcp.amb", 9000), Echo, PERMISSIVE),
    // --- path templates (s-rbac) ---
    c(
        D,
        SC,
        get("http://s-rbac.side:8080/api/v1/items"),
        Status(200),
        TEMPLATES,
    ),
    c(
        D,
        SC,
        get("http://s-rbac.side:8080/api/v1/x/items"),
        Status(403),
        TEMPLATES,
    ),
    c(
        D,
        SC,
        get("http://s-rbac.side:8080/files/a/b/c"),
        Status(200),
        TEMPLATES,
    ),
    c(
        D,
        SC,
        get("http://s-rbac.side:8080/exact"),
        Status(200),
        "operation methods+paths both must match",
    ),
    c(
        D,
        SC,
        Req::Http("POST", "http://s-rbac.side:8080/exact", &[]),
        Status(403),
        ALLOW_NOMATCH,
    ),
    // --- AUDIT, CUSTOM ---
    c(
        D,
        SC,
        get("http://s-echo.side:8080/open/audit"),
        Status(200),
        "istio.io Authorization Policy reference: AUDIT only logs; s-echo-audit matches every request and decides nothing",
    ),
    c(
        D,
        SC,
        get("http://s-custom.side:8080/guarded/x"),
        Says(403, "hello from p-authz-deny-0"),
        CUSTOM_DENY,
    ),
    c(
        D,
        SC,
        get("http://s-custom.side:8080/open"),
        Status(200),
        "a CUSTOM rule that does not match asks no authorizer",
    ),
    c(
        D,
        AC,
        get("http://a-custom.amb:8080/checked/x"),
        Status(200),
        CUSTOM_ALLOW,
    ),
    c(
        D,
        PC,
        get("http://s-custom.side:8080/guarded/y"),
        Status(403),
        CUSTOM_DENY,
    ),
    // --- JWT as Envoy's jwt_authn (a-jwt behind amb-waypoint) ---
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-jwt.amb:8080/",
            &["-H", "authorization: Basic YWxpY2U6eA=="],
        ),
        Says(403, "RBAC: access denied"),
        JWT_PREFIX,
    ),
    c(
        D,
        AC,
        get("http://a-jwt.amb:8080/?access_token={good}"),
        Status(200),
        JWT_PARAM,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-jwt.amb:8080/",
            &["-H", "authorization: Bearer {expired}"],
        ),
        Says(401, "Jwt is expired"),
        JWT_EXPIRED,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-jwt.amb:8080/claims/admin",
            &["-H", "authorization: Bearer {admin}"],
        ),
        Status(200),
        CLAIMS,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-jwt.amb:8080/claims/admin",
            &["-H", "authorization: Bearer {good}"],
        ),
        Status(403),
        CLAIMS,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-jwt.amb:8080/claims/presenter",
            &["-H", "authorization: Bearer {presenter}"],
        ),
        Status(200),
        PRESENTER,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-jwt.amb:8080/claims/presenter",
            &["-H", "authorization: Bearer {good}"],
        ),
        Status(403),
        PRESENTER,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-custom.amb:8080/jwt/x",
            &["-H", "x-jwt: Token {aud}"],
        ),
        Status(200),
        JWT_HEADER,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-custom.amb:8080/jwt/x",
            &["-H", "authorization: Bearer {aud}"],
        ),
        Status(403),
        JWT_HEADER,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-custom.amb:8080/jwt/x",
            &["--cookie", "session={aud}"],
        ),
        Status(200),
        JWT_COOKIE,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-custom.amb:8080/jwt/x",
            &["-H", "x-jwt: Token {good}"],
        ),
        Says(403, "Audiences in Jwt are not allowed"),
        JWT_AUD,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-custom.amb:8080/jwt/x",
            &["-H", "x-jwt: Token {otheriss}"],
        ),
        Says(401, "Jwt issuer is not configured"),
        JWT_ISS,
    ),
    c(
        D,
        AC,
        Req::Http(
            "GET",
            "http://a-custom.amb:8080/jwt/x",
            &["-H", "x-jwt: Token {skewed}"],
        ),
        Status(200),
        JWT_SKEW,
    ),
    // --- more attachment and conditions ---
    c(
        D,
        AC,
        get("http://a-wp.amb:8080/deny-all-waypoints"),
        Status(403),
        GATEWAY_CLASS,
    ),
    c(
        D,
        AC,
        get("http://x-echo.xns:8080/deny-all-waypoints"),
        Status(403),
        GATEWAY_CLASS,
    ),
    c(
        D,
        AC,
        get("http://a-pod-wp-0:8080/blocked"),
        Status(403),
        POD_WAYPOINT,
    ),
    c(
        D,
        AC,
        get("http://a-pod-wp.amb:8080/blocked"),
        Status(200),
        POD_WAYPOINT,
    ),
    c(
        D,
        SC,
        get("http://s-rbac.side:8080/remote"),
        Status(200),
        CONDITIONS,
    ),
    c(
        D,
        SC,
        get("http://s-rbac.side:8080/remote-no"),
        Status(403),
        CONDITIONS,
    ),
    c(
        D,
        AC,
        get("http://s-rbac.side:8080/dest"),
        Status(200),
        CONDITIONS,
    ),
    c(
        D,
        SC,
        get("http://s-rbac.side:8080/sa"),
        Status(200),
        SERVICE_ACCOUNTS,
    ),
    c(
        D,
        AC,
        get("http://s-rbac.side:8080/sa"),
        Status(403),
        SERVICE_ACCOUNTS,
    ),
    // --- override modes: everything one data plane ---
    c(
        "sidecar",
        PC,
        get("http://s-strict.side:8080/"),
        Status(200),
        OVERRIDE,
    ),
    c(
        "sidecar",
        PC,
        get("http://a-strict.amb:8080/"),
        Status(200),
        OVERRIDE,
    ),
    c(
        "sidecar",
        AC,
        Req::Http("POST", "http://a-wp.amb:8080/", &[]),
        Says(403, "RBAC: access denied"),
        "a sidecar enforces the selector policy a-wp-l4 at L7 (403); a-wp-authz's targetRefs bind to nothing without a waypoint",
    ),
    c(
        "sidecar",
        AC,
        get("http://a-wp2.amb:8080/"),
        Status(200),
        TARGETREFS,
    ),
    c(
        "sidecar",
        PC,
        get("http://s-echo.side:8080/id/plain"),
        Status(200),
        "in sidecar mode p-client has a sidecar: its namespace is known",
    ),
    c(
        "ambient",
        SC,
        get("http://s-strict.side:8080/"),
        Status(200),
        OVERRIDE,
    ),
    c(
        "ambient",
        AC,
        Req::Http("POST", "http://a-wp.amb:8080/", &[]),
        Status(403),
        WP_L7,
    ),
    c(
        "ambient",
        PC,
        get("http://a-strict.amb:8080/"),
        Status(200),
        OVERRIDE,
    ),
    c(
        "ambient",
        AC,
        get("http://a-wp2.amb:8080/"),
        Status(503),
        WP_IDENTITY,
    ),
    c(
        "ambient-waypoint",
        AC,
        get("http://s-echo.side:8080/open/x"),
        Says(403, "RBAC: access denied"),
        "with a waypoint for side, s-echo-by-targetref (DENY, targetRefs Service) now applies there",
    ),
    c(
        "ambient-waypoint",
        AC,
        get("http://s-rbac.side:8080/exact"),
        Status(503),
        SEL_L7_AMBIENT,
    ),
    c(
        "ambient-waypoint",
        AC,
        get("http://a-l4.amb:8080/"),
        Status(503),
        WP_IDENTITY,
    ),
];

/// Runs one case; returns what the client saw, in the same terms as [`Want`].
fn run(up: &Up, case: &Case, tokens: &[(&str, String)]) -> (Option<Want>, String) {
    match case.req {
        Req::Http(method, url, extra) => {
            let mut args: Vec<String> = vec!["-X".into(), method.into()];
            for a in extra {
                let mut a = a.to_string();
                for (k, v) in tokens {
                    a = a.replace(&format!("{{{k}}}"), v);
                }
                args.push(a);
            }
            let mut url = url.to_string();
            for (k, v) in tokens {
                url = url.replace(&format!("{{{k}}}"), v);
            }
            args.push(url);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, rc, body) = curl(up, case.from, &refs);
            let seen = match (code, rc) {
                (0, 52 | 56) => Some(Closed),
                (0, _) => None,
                (c, _) => Some(match case.want {
                    Says(w, text) if w == c && body.trim_start().starts_with(text) => Says(c, text),
                    _ => Status(c),
                }),
            };
            (
                seen,
                format!("status {code}, curl exit {rc}, body {:?}", body.trim()),
            )
        }
        Req::Tcp(host, port) => {
            let script = format!(
                "exec 3<>/dev/tcp/{host}/{port} && printf ping >&3 && timeout 3 head -c 4 <&3"
            );
            let out = exec(up, case.from, &["bash", "-c", &script]);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let rc = out.status.code().unwrap_or(-1);
            let seen = match (stdout.as_str(), rc) {
                ("ping", 0) => Some(Echo),
                ("", 0 | 1) => Some(Closed),
                _ => None,
            };
            let err = String::from_utf8_lossy(&out.stderr);
            (
                seen,
                format!("stdout {stdout:?}, exit {rc}, {}", err.trim()),
            )
        }
    }
}

/// `meshsim explain` on one case: its prediction must agree with the request it sends for
/// real (exit 0), and that outcome with the case's (what Istio does). Returns why not.
fn explain(up: &Up, case: &Case, tokens: &[(&str, String)]) -> Option<String> {
    let fill = |t: &str| {
        let mut t = t.to_string();
        for (k, v) in tokens {
            t = t.replace(&format!("{{{k}}}"), v);
        }
        t
    };
    let mut args: Vec<String> = vec![
        "explain".into(),
        "--cluster".into(),
        up.name.clone(),
        case.from.into(),
    ];
    let want: &str = match (case.req, case.want) {
        (_, Echo) => "allowed",
        (_, Closed) => "reset",
        (_, Status(403) | Says(403, _)) => "denied 403",
        (_, Status(401) | Says(401, _)) => "401",
        (_, Status(503) | Says(503, _)) => "503",
        (_, Status(_) | Says(..)) => "allowed",
    };
    match case.req {
        Req::Http(method, url, extra) => {
            args.push(fill(url));
            args.extend(["-X".into(), method.into()]);
            let mut it = extra.iter();
            while let Some(a) = it.next() {
                if *a == "-H"
                    && let Some(h) = it.next()
                {
                    args.extend(["-H".into(), fill(h)]);
                } else if *a == "--cookie"
                    && let Some(c) = it.next()
                {
                    args.extend(["-H".into(), format!("cookie: {}", fill(c))]);
                }
            }
        }
        Req::Tcp(host, port) => args.push(format!("tcp://{host}:{port}")),
    }
    let out = std::process::Command::new(meshsim())
        .args(&args)
        .output()
        .expect("meshsim explain");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let actual = text
        .lines()
        .find_map(|l| l.strip_prefix("sent for real: "))
        .unwrap_or("?")
        .to_string();
    let seen_ok = actual.starts_with(want) || (want == "reset" && actual == "timeout");
    match (out.status.code(), seen_ok) {
        (Some(0), true) => None,
        _ => Some(format!(
            "explain: exit {:?}, sent for real {actual:?}, case wants {want:?}\n{text}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

fn tokens() -> Vec<(&'static str, String)> {
    let key = repo().join("scenarios/manifests/payment-jwt-key.pem");
    let text = std::fs::read_to_string(key).expect("read the test key");
    let signer = scenario::jwt::SigningKey::from_pkcs8_text(&text, "meshsim-test").expect("key");
    let (other, _) = scenario::jwt::SigningKey::generate("meshsim-test").expect("new key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = |extra: serde_json::Value| {
        let mut m = std::collections::BTreeMap::new();
        m.insert("iss".to_string(), "https://auth.example.com".into());
        m.insert("sub".to_string(), "alice".into());
        if let serde_json::Value::Object(o) = extra {
            m.extend(o);
        }
        m
    };
    let mint = |k: &scenario::jwt::SigningKey, extra| k.mint(&claims(extra)).expect("mint");
    vec![
        ("good", mint(&signer, serde_json::json!({}))),
        ("forged", mint(&other, serde_json::json!({}))),
        (
            "expired",
            mint(&signer, serde_json::json!({"exp": now - 3600})),
        ),
        (
            "admin",
            mint(&signer, serde_json::json!({"groups": ["admins", "dev"]})),
        ),
        (
            "presenter",
            mint(&signer, serde_json::json!({"azp": "web-app"})),
        ),
        ("aud", mint(&signer, serde_json::json!({"aud": "meshsim"}))),
        (
            "otheriss",
            mint(
                &signer,
                serde_json::json!({"iss": "https://other.example.com", "aud": "meshsim"}),
            ),
        ),
        (
            "skewed",
            mint(
                &signer,
                serde_json::json!({"aud": "meshsim", "exp": now - 30}),
            ),
        ),
    ]
}

fn conformance(mode: &str) {
    // Every `{name}` a case uses is a token minted here: a typo would test a malformed token.
    let known: Vec<&str> = tokens().iter().map(|(k, _)| *k).collect();
    for case in CASES {
        if let Req::Http(_, url, extra) = case.req {
            for text in extra.iter().chain([&url]) {
                if let Some(name) = text.split('{').nth(1).and_then(|r| r.split('}').next()) {
                    assert!(known.contains(&name), "case uses unknown token {{{name}}}");
                }
            }
        }
    }
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run(&format!("conformance_{mode}")) {
        return;
    }
    let cases: Vec<&Case> = CASES.iter().filter(|c| c.mode == mode).collect();
    let up = up_path(&repo().join("tests/conformance/mixed.yaml"), mode);
    let tokens = tokens();
    let mut report = String::new();
    let mut failed = 0;
    for (i, case) in cases.iter().enumerate() {
        let (seen, detail) = run(&up, case, &tokens);
        // `meshsim explain` predicts every case (no-mesh has no proxy to explain) and checks
        // its prediction against the request it sends.
        let explained = if mode == "no-mesh" {
            None
        } else {
            explain(&up, case, &tokens)
        };
        let ok = seen == Some(case.want) && explained.is_none();
        failed += usize::from(!ok);
        if let Some(e) = &explained {
            let _ = writeln!(report, "      {e}");
        }
        let _ = writeln!(
            report,
            "{} {mode} #{i}: {} {:?} → want {:?}, saw {seen:?} ({detail})\n      source: {}",
            if ok { "ok  " } else { "FAIL" },
            case.from,
            case.req,
            case.want,
            case.source
        );
    }
    println!("{report}");
    assert_eq!(
        failed,
        0,
        "{failed} of {} cases differ from Istio:\n{report}",
        cases.len()
    );
}

#[test]
fn conformance_declared() {
    conformance("declared");
}

#[test]
fn conformance_sidecar() {
    conformance("sidecar");
}

#[test]
fn conformance_ambient() {
    conformance("ambient");
}

#[test]
fn conformance_ambient_waypoint() {
    conformance("ambient-waypoint");
}

#[test]
fn at_least_sixty_cases_cover_every_mode() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    for m in ["declared", "sidecar", "ambient", "ambient-waypoint"] {
        assert!(CASES.iter().any(|c| c.mode == m), "no case for {m}");
    }
}
