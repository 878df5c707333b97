// The project's own unix-socket listener for the gRPC server: real gRPC
// clients connect through it, connections get the large send buffer, and
// bad paths fail clearly without touching what is there.
#include "server/grpc/unix_listener.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "gtest/gtest.h"
#include <grpcpp/grpcpp.h>

#include "server/frame_store.h"
#include "server/grpc/display_service.h"
#include "server/worker_pool.h"

namespace vgpu::server {
namespace {

namespace pb = vgpu::display::v1;

class UnixListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/unix-listener-" + std::to_string(getpid());
    mkdir(dir_.c_str(), 0700);
    path_ = dir_ + "/grpc.sock";
    service_ = std::make_unique<DisplayService>(&store_, &pool_,
                                                DisplayServiceOptions{});
    grpc::ServerBuilder builder;  // no ports: the listener brings them
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now());
    rmdir(dir_.c_str());
  }

  std::string dir_, path_;
  FrameStore store_;
  WorkerPool pool_{2};
  std::unique_ptr<DisplayService> service_;
  std::unique_ptr<grpc::Server> server_;
};

long WmemMax() {
  std::ifstream in("/proc/sys/net/core/wmem_max");
  long value = 0;
  in >> value;
  return value;
}

TEST_F(UnixListenerTest, ServesClientsWithALargeSendBuffer) {
  auto listener = UnixSocketListener::Start(path_, server_.get(), 4 << 20);
  ASSERT_TRUE(listener.ok()) << listener.status();
  store_.OnScanoutMode({0, true, 640, 480}, nullptr);
  auto stub = pb::Display::NewStub(
      grpc::CreateChannel("unix:" + path_, grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 3; ++i) {  // several calls, one connection
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    pb::ListScanoutsResponse response;
    ASSERT_TRUE(stub->ListScanouts(&context, {}, &response).ok());
    ASSERT_EQ(response.scanouts_size(), 1);
    EXPECT_EQ(response.scanouts(0).width(), 640u);
  }
  // The kernel doubles what it grants. With CAP_NET_ADMIN the listener
  // forces the full size; without, the kernel caps it at net.core.wmem_max.
  // Either way far above the 208 KiB default.
  const long granted = (*listener)->granted_send_buffer();
  const long forced = long{8} << 20;
  const long capped = std::min<long>(long{4} << 20, WmemMax()) * 2;
  EXPECT_TRUE(granted == forced || granted == capped)
      << granted << " bytes granted";
  listener->reset();
  struct stat gone {};
  EXPECT_NE(lstat(path_.c_str(), &gone), 0) << "the socket file is removed";
}

TEST_F(UnixListenerTest, ReplacesAStaleSocketButNotAFile) {
  {
    auto first = UnixSocketListener::Start(path_, server_.get());
    ASSERT_TRUE(first.ok());
    // A crash would leave the file behind; simulate by linking it elsewhere.
    ASSERT_EQ(link(path_.c_str(), (path_ + ".old").c_str()), 0);
  }
  ASSERT_EQ(rename((path_ + ".old").c_str(), path_.c_str()), 0);
  auto second = UnixSocketListener::Start(path_, server_.get());
  EXPECT_TRUE(second.ok()) << second.status();
  second->reset();

  std::ofstream(path_) << "precious";
  auto refused = UnixSocketListener::Start(path_, server_.get());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(refused.status().message().find("not a socket"), std::string::npos);
  std::string content;
  std::ifstream(path_) >> content;
  EXPECT_EQ(content, "precious");
  unlink(path_.c_str());
}

TEST_F(UnixListenerTest, BadPathsAreClearErrors) {
  auto missing =
      UnixSocketListener::Start(dir_ + "/no/such/dir/x.sock", server_.get());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot listen on"),
            std::string::npos);
  auto too_long =
      UnixSocketListener::Start(std::string(200, 'a'), server_.get());
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vgpu::server
