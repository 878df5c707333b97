// vgpu-shot: takes a screenshot of a VM's scanout from vgpu-displayd and
// writes it to a PNG, JPEG or PPM file (by --out's extension).
//
//   vgpu-shot --server=127.0.0.1:50051 --out=screen.png
//   vgpu-shot --server=unix:/run/vgpu.grpc --wait=stable:500 --timeout=30s
//   --out=ci.png
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "vgpu/display/v1/display.grpc.pb.h"
#include <grpcpp/grpcpp.h>

#include "clients/subsampling_flag.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "vgpu-displayd's gRPC address.");
ABSL_FLAG(uint32_t, scanout, 0, "Scanout (virtual monitor) to capture.");
ABSL_FLAG(std::string, out, "screen.png",
          "Output file: .png, .jpg/.jpeg or .ppm.");
ABSL_FLAG(uint32_t, quality, 90, "JPEG quality, 1..100.");
ABSL_FLAG(std::string, subsampling, "420", vgpu::clients::kSubsamplingHelp);
ABSL_FLAG(std::string, wait, "now",
          "now | next (the next flush) | after:SEQ (a frame newer than SEQ) | "
          "stable:MS (no "
          "flush for MS milliseconds).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "How long to wait for the condition.");
ABSL_FLAG(std::string, region, "",
          "X,Y,WIDTH,HEIGHT of the part to capture (default: all).");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle: connect over TLS, trusting these roots.");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mutual TLS).");
ABSL_FLAG(std::string, tls_key, "", "PEM key of --tls_cert.");

namespace {

namespace pb = vgpu::display::v1;

int Fail(const std::string& message) {
  std::fprintf(stderr, "vgpu-shot: %s\n", message.c_str());
  return 1;
}

bool ParseWait(const std::string& wait, pb::GetScreenshotRequest* request) {
  uint64_t value = 0;
  if (wait == "now") return true;
  if (wait == "next") {
    request->set_next_flush(true);
    return true;
  }
  if (absl::StartsWith(wait, "after:") &&
      absl::SimpleAtoi(wait.substr(6), &value)) {
    request->set_after_sequence(value);
    return true;
  }
  if (absl::StartsWith(wait, "stable:") &&
      absl::SimpleAtoi(wait.substr(7), &value) && value <= 3600000) {
    request->set_stable_for_ms(static_cast<uint32_t>(value));
    return true;
  }
  return false;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

std::shared_ptr<grpc::ChannelCredentials> Credentials() {
  if (absl::GetFlag(FLAGS_tls_ca).empty())
    return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(absl::GetFlag(FLAGS_tls_ca));
  if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
    options.pem_cert_chain = ReadFile(absl::GetFlag(FLAGS_tls_cert));
    options.pem_private_key = ReadFile(absl::GetFlag(FLAGS_tls_key));
  }
  return grpc::SslCredentials(options);
}

int Run() {
  const std::string out = absl::GetFlag(FLAGS_out);
  pb::GetScreenshotRequest request;
  request.set_scanout_id(absl::GetFlag(FLAGS_scanout));
  bool ppm = absl::EndsWith(out, ".ppm");
  if (absl::EndsWith(out, ".png")) {
    request.set_format(pb::IMAGE_FORMAT_PNG);
  } else if (absl::EndsWith(out, ".jpg") || absl::EndsWith(out, ".jpeg")) {
    request.set_format(pb::IMAGE_FORMAT_JPEG);
    request.set_jpeg_quality(absl::GetFlag(FLAGS_quality));
    std::optional<pb::JpegSubsampling> subsampling =
        vgpu::clients::ParseSubsampling(absl::GetFlag(FLAGS_subsampling));
    if (!subsampling)
      return Fail("--subsampling must be 420, 422, 444 or gray");
    request.set_jpeg_subsampling(*subsampling);
  } else if (ppm) {
    request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  } else {
    return Fail("--out must end in .png, .jpg, .jpeg or .ppm");
  }
  if (!ParseWait(absl::GetFlag(FLAGS_wait), &request)) {
    return Fail("--wait must be now, next, after:SEQ or stable:MS");
  }
  if (std::string region = absl::GetFlag(FLAGS_region); !region.empty()) {
    uint32_t v[4];
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t comma; (comma = region.find(',', start)) != std::string::npos;
         start = comma + 1) {
      parts.push_back(region.substr(start, comma - start));
    }
    parts.push_back(region.substr(start));
    if (parts.size() != 4) return Fail("--region is X,Y,WIDTH,HEIGHT");
    for (int i = 0; i < 4; ++i) {
      if (!absl::SimpleAtoi(parts[i], &v[i]))
        return Fail("--region is X,Y,WIDTH,HEIGHT");
    }
    request.mutable_region()->set_x(v[0]);
    request.mutable_region()->set_y(v[1]);
    request.mutable_region()->set_width(v[2]);
    request.mutable_region()->set_height(v[3]);
  }
  absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  request.set_timeout_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(timeout)));

  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(256 << 20);
  auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                           Credentials(), arguments);
  auto stub = pb::Display::NewStub(channel);
  grpc::ClientContext context;
  // The server gives up at the wait timeout; allow for the transfer too.
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(timeout + absl::Seconds(5)));
  context.set_wait_for_ready(false);
  pb::Screenshot shot;
  grpc::Status status = stub->GetScreenshot(&context, request, &shot);
  if (!status.ok()) {
    std::string why = status.error_message();
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      why = "cannot reach " + absl::GetFlag(FLAGS_server) + ": " + why;
    }
    return Fail(why);
  }
  std::ofstream file(out, std::ios::binary);
  if (ppm) {
    file << "P6\n" << shot.width() << " " << shot.height() << "\n255\n";
    const std::string& bgrx = shot.data();
    std::string rgb(size_t{shot.width()} * shot.height() * 3, '\0');
    for (size_t i = 0; i * 4 + 3 < bgrx.size() && i * 3 + 2 < rgb.size(); ++i) {
      rgb[i * 3] = bgrx[i * 4 + 2];
      rgb[i * 3 + 1] = bgrx[i * 4 + 1];
      rgb[i * 3 + 2] = bgrx[i * 4];
    }
    file.write(rgb.data(), static_cast<std::streamsize>(rgb.size()));
  } else {
    file.write(shot.data().data(),
               static_cast<std::streamsize>(shot.data().size()));
  }
  if (!file.good()) return Fail("cannot write " + out);
  std::printf("%s: %ux%u, frame %llu\n", out.c_str(), shot.width(),
              shot.height(),
              static_cast<unsigned long long>(shot.frame_sequence()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "vgpu-shot: a screenshot of a VM from vgpu-displayd");
  absl::ParseCommandLine(argc, argv);
  return Run();
}
