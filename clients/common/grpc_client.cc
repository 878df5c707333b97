#include "clients/common/grpc_client.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include <grpc/support/log.h>

#include "common/cli.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "vgpu-displayd's gRPC address: host:port or unix:/path/to.sock.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle: connect over TLS, trusting these roots.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate, for a daemon that requires one (mutual "
          "TLS); implies TLS. Goes with --tls_key.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(absl::Duration, connect_timeout, absl::ZeroDuration(),
          "Wait up to this long for the daemon to accept connections (e.g. "
          "30s when it is started at the same time); 0 tries once.");

namespace vgpu::clients {
namespace {

void DropLog(gpr_log_func_args*) {}

}  // namespace

void QuietGrpcLogs() {
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function(DropLog);
}

absl::StatusOr<Connection> ConnectFromFlags(
    int max_receive_message_bytes, const std::function<bool()>& cancelled) {
  Connection connection;
  connection.server = absl::GetFlag(FLAGS_server);
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  const absl::Duration connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  if (connect_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--connect_timeout must be 0 or more");
  }
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!ca.empty() || !cert.empty()) {
    grpc::SslCredentialsOptions options;
    if (!ca.empty()) {
      absl::StatusOr<std::string> roots = cli::ReadPemFlag("tls_ca", ca);
      if (!roots.ok()) return roots.status();
      options.pem_root_certs = *std::move(roots);
    }
    if (!cert.empty()) {
      absl::StatusOr<std::string> chain = cli::ReadPemFlag("tls_cert", cert);
      if (!chain.ok()) return chain.status();
      absl::StatusOr<std::string> private_key =
          cli::ReadPemFlag("tls_key", key);
      if (!private_key.ok()) return private_key.status();
      options.pem_cert_chain = *std::move(chain);
      options.pem_private_key = *std::move(private_key);
      connection.client_certificate = true;
    }
    credentials = grpc::SslCredentials(options);
    connection.tls = true;
  }
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(max_receive_message_bytes);
  // Retry quickly while waiting for a daemon that is starting. (Not
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also uses it as the time one
  // connection attempt may take, and a TLS handshake on a loaded machine
  // can take longer than a short backoff.)
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  connection.channel =
      grpc::CreateCustomChannel(connection.server, credentials, arguments);
  if (connect_timeout > absl::ZeroDuration()) {
    const absl::Time deadline = absl::Now() + connect_timeout;
    while (absl::Now() < deadline && !(cancelled && cancelled())) {
      grpc_connectivity_state state = connection.channel->GetState(true);
      if (state == GRPC_CHANNEL_READY) {
        connection.ready = true;
        break;
      }
      connection.channel->WaitForStateChange(
          state, absl::ToChronoTime(std::min(
                     deadline, absl::Now() + absl::Milliseconds(200))));
    }
  }
  return connection;
}

void PrepareCall(const Connection& connection, grpc::ClientContext* context) {
  context->set_wait_for_ready(connection.ready);
}

std::string DescribeError(const grpc::Status& status,
                          const Connection& connection) {
  const std::string& message = status.error_message();
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return message;
  std::string out =
      absl::StrCat("cannot reach ", connection.server, ": ", message);
  const std::string lower = absl::AsciiStrToLower(message);
  const bool handshake =
      absl::StrContains(lower, "handshake") || absl::StrContains(lower, "ssl");
  if (absl::StrContains(message, "Connection refused") ||
      absl::StrContains(message, "No such file")) {
    absl::StrAppend(&out,
                    " (is vgpu-displayd running there? --connect_timeout=30s "
                    "waits for one that is starting)");
  } else if (!connection.tls) {
    absl::StrAppend(&out,
                    " (the daemon may serve TLS only: pass --tls_ca=CA.pem, "
                    "and --tls_cert/--tls_key if it asks for client "
                    "certificates)");
  } else if (handshake || absl::StrContains(message, "Socket closed") ||
             absl::StrContains(message, "Connection reset")) {
    absl::StrAppend(
        &out, connection.client_certificate
                  ? " (TLS failed: is --tls_ca the CA that signed the "
                    "daemon's certificate, and was --tls_cert signed by the "
                    "CA in its --tls_client_ca? Does the daemon use TLS?)"
                  : " (TLS failed: does the daemon use TLS, is --tls_ca the CA "
                    "that signed its certificate, and does it require a "
                    "client certificate (--tls_cert, --tls_key)?)");
  }
  return out;
}

}  // namespace vgpu::clients
