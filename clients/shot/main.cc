// vgpu-shot: takes a screenshot of a VM's scanout from vgpu-displayd and
// writes it to a PNG, JPEG or PPM file (by --out's extension).
//
//   vgpu-shot --server=127.0.0.1:50051 --out=screen.png
//   vgpu-shot --server=unix:/run/vgpu.grpc --wait=stable:500 --timeout=30s
//   --out=ci.png

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "vgpu/display/v1/display.grpc.pb.h"
#include <grpcpp/grpcpp.h>

#include "clients/common/grpc_client.h"
#include "clients/common/output_file.h"
#include "clients/common/subsampling_flag.h"
#include "common/cli.h"

ABSL_FLAG(uint32_t, scanout, 0, "Scanout (virtual monitor) to capture.");
ABSL_FLAG(std::string, out, "screen.png",
          "Output file: .png, .jpg/.jpeg or .ppm.");
ABSL_FLAG(uint32_t, quality, 90, "JPEG quality, 1..100 (.jpg/.jpeg only).");
ABSL_FLAG(std::string, subsampling, "420", vgpu::clients::kSubsamplingHelp);
ABSL_FLAG(std::string, wait, "now",
          "now | next (the next flush) | after:SEQ (a frame newer than SEQ) | "
          "stable:MS (no "
          "flush for MS milliseconds).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "How long the daemon waits for the --wait condition, with a unit "
          "(10s, 500ms).");
ABSL_FLAG(std::string, region, "",
          "X,Y,WIDTH,HEIGHT of the part to capture (default: all).");

namespace {

namespace pb = vgpu::display::v1;

constexpr absl::string_view kName = "vgpu-shot";

// Exit codes: 0 written, 1 the daemon or the file failed, 2 bad flags.
int Fail(absl::string_view message) {
  return vgpu::cli::Failure(kName, message);
}
int Usage(absl::string_view message) {
  return vgpu::cli::UsageError(kName, message);
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

int Run() {
  const std::string out = absl::GetFlag(FLAGS_out);
  pb::GetScreenshotRequest request;
  request.set_scanout_id(absl::GetFlag(FLAGS_scanout));
  bool ppm = absl::EndsWith(out, ".ppm");
  if (absl::EndsWith(out, ".png")) {
    request.set_format(pb::IMAGE_FORMAT_PNG);
  } else if (absl::EndsWith(out, ".jpg") || absl::EndsWith(out, ".jpeg")) {
    request.set_format(pb::IMAGE_FORMAT_JPEG);
    const uint32_t quality = absl::GetFlag(FLAGS_quality);
    if (absl::Status range = vgpu::cli::CheckRange("quality", quality, 1, 100);
        !range.ok()) {
      return Usage(range.message());
    }
    request.set_jpeg_quality(quality);
    std::optional<pb::JpegSubsampling> subsampling =
        vgpu::clients::ParseSubsampling(absl::GetFlag(FLAGS_subsampling));
    if (!subsampling)
      return Usage("--subsampling must be 420, 422, 444 or gray");
    request.set_jpeg_subsampling(*subsampling);
  } else if (ppm) {
    request.set_format(pb::IMAGE_FORMAT_RAW_BGRX);
  } else {
    return Usage("--out must end in .png, .jpg, .jpeg or .ppm");
  }
  if (!ParseWait(absl::GetFlag(FLAGS_wait), &request)) {
    return Usage(
        "--wait must be now, next, after:SEQ or stable:MS (MS up to 3600000)");
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
    if (parts.size() != 4) return Usage("--region is X,Y,WIDTH,HEIGHT");
    for (int i = 0; i < 4; ++i) {
      if (!absl::SimpleAtoi(parts[i], &v[i]))
        return Usage("--region is X,Y,WIDTH,HEIGHT");
    }
    request.mutable_region()->set_x(v[0]);
    request.mutable_region()->set_y(v[1]);
    request.mutable_region()->set_width(v[2]);
    request.mutable_region()->set_height(v[3]);
  }
  absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout < absl::ZeroDuration() || timeout > absl::Hours(1)) {
    return Usage("--timeout must be 0..1h");
  }
  if (absl::Status writable = vgpu::clients::CheckWritable(out);
      !writable.ok()) {
    return Fail(writable.message());
  }
  request.set_timeout_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(timeout)));

  absl::StatusOr<vgpu::clients::Connection> connection =
      vgpu::clients::ConnectFromFlags(256 << 20);
  if (!connection.ok()) return Usage(connection.status().message());
  auto stub = pb::Display::NewStub(connection->channel);
  grpc::ClientContext context;
  // The server gives up at the wait timeout; allow for the transfer too.
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(timeout + absl::Seconds(5)));
  vgpu::clients::PrepareCall(*connection, &context);
  pb::Screenshot shot;
  grpc::Status status = stub->GetScreenshot(&context, request, &shot);
  if (!status.ok())
    return Fail(vgpu::clients::DescribeError(status, *connection));
  std::string bytes;
  if (ppm) {
    bytes = absl::StrCat("P6\n", shot.width(), " ", shot.height(), "\n255\n");
    const std::string& bgrx = shot.data();
    const size_t header = bytes.size();
    bytes.resize(header + size_t{shot.width()} * shot.height() * 3);
    for (size_t i = 0;
         i * 4 + 3 < bgrx.size() && header + i * 3 + 2 < bytes.size(); ++i) {
      bytes[header + i * 3] = bgrx[i * 4 + 2];
      bytes[header + i * 3 + 1] = bgrx[i * 4 + 1];
      bytes[header + i * 3 + 2] = bgrx[i * 4];
    }
  } else {
    bytes = std::move(*shot.mutable_data());
  }
  if (absl::Status written = vgpu::clients::WriteFileAtomically(out, bytes);
      !written.ok()) {
    return Fail(written.message());
  }
  std::printf("%s: %ux%u, frame %llu\n", out.c_str(), shot.width(),
              shot.height(),
              static_cast<unsigned long long>(shot.frame_sequence()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  vgpu::cli::ParseOrExit(
      argc, argv,
      {kName,
       "a screenshot of a VM from vgpu-displayd, to PNG, JPEG or PPM.\n"
       "  vgpu-shot --server=127.0.0.1:50051 --out=screen.png\n"
       "  vgpu-shot --server=unix:/run/vgpu.grpc --connect_timeout=30s "
       "--wait=stable:500 --timeout=30s --out=ci.png\n"
       "Exit codes: 0 written, 1 the daemon or the file failed, 2 bad "
       "flags."});
  vgpu::clients::QuietGrpcLogs();
  return Run();
}
