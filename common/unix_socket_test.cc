#include "common/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace vgpu {
namespace {

class OwnedUnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vgpu-socket-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    folder_ = pattern;
    path_ = folder_ + "/s.sock";
  }
  void TearDown() override { std::filesystem::remove_all(folder_); }
  bool Exists(const std::string& path) {
    struct stat st {};
    return lstat(path.c_str(), &st) == 0;
  }
  // A socket bound at path_ by "another program" (no lock file).
  int BindForeign(bool listening) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path_.c_str());
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
              0);
    if (listening) {
      EXPECT_EQ(listen(fd, 1), 0);
    }
    return fd;
  }

  std::string folder_, path_;
};

TEST_F(OwnedUnixSocketTest, SecondOwnerIsRefusedAndFirstKeepsThePath) {
  auto first = OwnedUnixSocket::Listen(path_, 4);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = OwnedUnixSocket::Listen(path_, 4);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsAlreadyExists(second.status()));
  EXPECT_NE(second.status().message().find("is in use"), std::string::npos)
      << second.status();
  // The refused attempt removed nothing.
  EXPECT_TRUE(Exists(path_));
  EXPECT_TRUE(Exists(path_ + ".lock"));
  first->reset();
  EXPECT_FALSE(Exists(path_));
  EXPECT_FALSE(Exists(path_ + ".lock"));
  // Free again.
  EXPECT_TRUE(OwnedUnixSocket::Listen(path_, 4).ok());
}

TEST_F(OwnedUnixSocketTest, LiveForeignListenerIsRefused) {
  int foreign = BindForeign(/*listening=*/true);
  auto owned = OwnedUnixSocket::Listen(path_, 4);
  ASSERT_FALSE(owned.ok());
  EXPECT_TRUE(absl::IsAlreadyExists(owned.status())) << owned.status();
  EXPECT_TRUE(Exists(path_));
  EXPECT_FALSE(Exists(path_ + ".lock"));
  close(foreign);
}

TEST_F(OwnedUnixSocketTest, StaleSocketIsReplaced) {
  close(BindForeign(/*listening=*/false));  // bound, never listened: stale
  ASSERT_TRUE(Exists(path_));
  auto owned = OwnedUnixSocket::Listen(path_, 4);
  ASSERT_TRUE(owned.ok()) << owned.status();
  int fd = (*owned)->TakeFd();
  EXPECT_GE(fd, 0);
  close(fd);
}

TEST_F(OwnedUnixSocketTest, OtherFilesAndMissingFoldersAreErrors) {
  std::ofstream(path_) << "not a socket";
  auto regular = OwnedUnixSocket::Listen(path_, 4);
  ASSERT_FALSE(regular.ok());
  EXPECT_NE(regular.status().message().find("not a socket"), std::string::npos);
  EXPECT_TRUE(Exists(path_));  // untouched

  auto missing = OwnedUnixSocket::Listen(folder_ + "/no/such/x.sock", 4);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find("does not exist"),
            std::string::npos);

  EXPECT_FALSE(OwnedUnixSocket::Listen(std::string(200, 'x'), 4).ok());
}

TEST_F(OwnedUnixSocketTest, ReplacedPathIsNotRemovedByTheOldOwner) {
  auto owned = OwnedUnixSocket::Listen(path_, 4);
  ASSERT_TRUE(owned.ok());
  // Someone else put a file there (e.g. an operator moved things around).
  ASSERT_EQ(unlink(path_.c_str()), 0);
  std::ofstream(path_) << "theirs";
  owned->reset();
  EXPECT_TRUE(Exists(path_));
}

}  // namespace
}  // namespace vgpu
