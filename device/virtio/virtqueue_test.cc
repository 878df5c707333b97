#include "device/virtio/virtqueue.h"

#include <cstring>

#include "gtest/gtest.h"

#include "device/virtio/driver_queue.h"

namespace vgpu::virtio {
namespace {

constexpr uint16_t kSize = 8;

class VirtqueueTest : public ::testing::TestWithParam<bool> {
 protected:
  void Build(bool event_idx, bool indirect = true, QueueLimits limits = {}) {
    auto mapping = MemoryMapping::CreateMemfd(1 << 20, "ram");
    ASSERT_TRUE(mapping.ok());
    auto memory = GuestMemory::Create(
        {{.guest_phys_addr = 0, .size = 1 << 20, .mapping = *mapping}});
    ASSERT_TRUE(memory.ok());
    memory_ = *memory;
    allocator_ = std::make_unique<GuestAllocator>(4096, (1 << 20) - 4096);
    auto driver =
        DriverQueue::Create(memory_, *allocator_, kSize, event_idx, 2);
    ASSERT_TRUE(driver.ok());
    driver_ = std::move(*driver);
    const DriverQueueLayout& l = driver_->layout();
    auto device = SplitVirtqueue::Create(
        kSize, *memory_->Translate(l.desc_gpa, DescTableBytes(kSize)),
        *memory_->Translate(l.avail_gpa, AvailRingBytes(kSize)),
        *memory_->Translate(l.used_gpa, UsedRingBytes(kSize)), event_idx,
        indirect, limits);
    ASSERT_TRUE(device.ok());
    device_ = std::move(*device);
    data_gpa_ = *allocator_->Allocate(4096);
  }
  VringDesc& Desc(uint16_t i) {
    return *reinterpret_cast<VringDesc*>(driver_->desc_table().data() + 16 * i);
  }
  void SetAvailHead(uint16_t slot, uint16_t head) {
    std::memcpy(driver_->avail_ring().data() + 4 + 2 * slot, &head, 2);
  }

  std::shared_ptr<const GuestMemory> memory_;
  std::unique_ptr<GuestAllocator> allocator_;
  std::unique_ptr<DriverQueue> driver_;
  std::unique_ptr<SplitVirtqueue> device_;
  uint64_t data_gpa_ = 0;
};

TEST_P(VirtqueueTest, PopsReadableThenWritableBuffersAndReturnsThem) {
  Build(/*event_idx=*/false);
  GuestBuffer out[] = {{data_gpa_, 24}, {data_gpa_ + 64, 32}};
  GuestBuffer in[] = {{data_gpa_ + 128, 24}};
  auto head = driver_->Add(out, in, /*indirect=*/GetParam());
  ASSERT_TRUE(head.ok());
  auto chain = device_->Pop(*memory_);
  ASSERT_TRUE(chain.ok());
  ASSERT_TRUE(chain->has_value());
  EXPECT_EQ((*chain)->head, *head);
  ASSERT_EQ((*chain)->readable.size(), 2u);
  EXPECT_EQ((*chain)->readable[1].size(), 32u);
  ASSERT_EQ((*chain)->writable.size(), 1u);
  EXPECT_FALSE((*chain)->bad_buffer);
  device_->PushUsed((*chain)->head, 24);
  EXPECT_FALSE(device_->Pop(*memory_)->has_value());
  auto used = driver_->PopUsed();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->head, *head);
  EXPECT_EQ(used->written, 24u);
  EXPECT_EQ(driver_->free_descriptors(), kSize);
}

INSTANTIATE_TEST_SUITE_P(DirectAndIndirect, VirtqueueTest, ::testing::Bool());

class VirtqueueErrorTest : public VirtqueueTest {};

TEST_F(VirtqueueErrorTest, DescriptorLoopIsDetected) {
  Build(false);
  GuestBuffer out[] = {{data_gpa_, 8}, {data_gpa_, 8}};
  auto head = driver_->Add(out, {});
  ASSERT_TRUE(head.ok());
  // Point the second descriptor back at the first.
  uint16_t first = *head, second = Desc(first).next;
  Desc(second).flags |= kDescFlagNext;
  Desc(second).next = first;
  auto chain = device_->Pop(*memory_);
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(VirtqueueErrorTest, HeadOutOfRangeIsDetected) {
  Build(false);
  SetAvailHead(0, kSize);
  driver_->PublishAvailIndex(1);
  EXPECT_EQ(device_->Pop(*memory_).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(VirtqueueErrorTest, AvailIndexRunningAheadIsDetected) {
  Build(false);
  driver_->PublishAvailIndex(kSize + 1);
  EXPECT_EQ(device_->Pop(*memory_).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(VirtqueueErrorTest, NextOutOfRangeIsDetected) {
  Build(false);
  GuestBuffer out[] = {{data_gpa_, 8}};
  auto head = driver_->Add(out, {});
  Desc(*head).flags |= kDescFlagNext;
  Desc(*head).next = 200;
  EXPECT_EQ(device_->Pop(*memory_).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(VirtqueueErrorTest, ReadableAfterWritableIsDetected) {
  Build(false);
  GuestBuffer out[] = {{data_gpa_, 8}, {data_gpa_, 8}};
  auto head = driver_->Add(out, {});
  Desc(*head).flags |= kDescFlagWrite;  // first writable, second readable
  EXPECT_EQ(device_->Pop(*memory_).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(VirtqueueErrorTest, IndirectWithoutNegotiationIsDetected) {
  Build(false, /*indirect=*/false);
  GuestBuffer out[] = {{data_gpa_, 8}};
  ASSERT_TRUE(driver_->Add(out, {}, /*indirect=*/true).ok());
  EXPECT_EQ(device_->Pop(*memory_).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(VirtqueueErrorTest, NestedIndirectIsDetected) {
  Build(false);
  GuestBuffer out[] = {{data_gpa_, 8}};
  auto head = driver_->Add(out, {}, /*indirect=*/true);
  // Make the indirect table's only entry itself indirect.
  VringDesc table_desc = Desc(*head);
  VringDesc inner{table_desc.addr, 16, kDescFlagIndirect, 0};
  ASSERT_TRUE(
      memory_
          ->Write(table_desc.addr,
                  absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&inner), 16))
          .ok());
  EXPECT_EQ(device_->Pop(*memory_).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(VirtqueueErrorTest, BadIndirectLengthIsDetected) {
  Build(false);
  GuestBuffer out[] = {{data_gpa_, 8}};
  auto head = driver_->Add(out, {}, true);
  Desc(*head).len = 15;
  EXPECT_EQ(device_->Pop(*memory_).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(VirtqueueErrorTest, OverlongIndirectChainIsDetected) {
  Build(false, true, QueueLimits{.max_chain_descriptors = 4});
  GuestBuffer out[] = {{data_gpa_, 8},
                       {data_gpa_, 8},
                       {data_gpa_, 8},
                       {data_gpa_, 8},
                       {data_gpa_, 8}};
  ASSERT_TRUE(driver_->Add(out, {}, true).ok());
  EXPECT_EQ(device_->Pop(*memory_).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(VirtqueueErrorTest, BufferOutsideRamIsFlaggedNotFatal) {
  Build(false);
  GuestBuffer out[] = {{data_gpa_, 8}, {uint64_t{1} << 40, 8}};
  GuestBuffer in[] = {{data_gpa_ + 64, 24}};
  ASSERT_TRUE(driver_->Add(out, in).ok());
  auto chain = device_->Pop(*memory_);
  ASSERT_TRUE(chain.ok());
  ASSERT_TRUE(chain->has_value());
  EXPECT_TRUE((*chain)->bad_buffer);
  EXPECT_EQ((*chain)->readable.size(), 1u);
  EXPECT_EQ((*chain)->writable.size(), 1u);
}

TEST_F(VirtqueueTest, EventIdxNotifiesOnlyWhenUsedEventIsCrossed) {
  Build(/*event_idx=*/true);
  GuestBuffer out[] = {{data_gpa_, 8}};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(driver_->Add(out, {}).ok());
  // used_event = 5: the driver wants an interrupt once entry 5 is used.
  uint16_t used_event = 5;
  std::memcpy(driver_->avail_ring().data() + 4 + 2 * kSize, &used_event, 2);
  for (int i = 0; i < 3; ++i) {
    auto chain = device_->Pop(*memory_);
    device_->PushUsed((*chain)->head, 0);
  }
  EXPECT_FALSE(device_->ShouldNotify());  // used idx 3 has not passed 5
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(driver_->Add(out, {}).ok());
  for (int i = 0; i < 3; ++i) {
    auto chain = device_->Pop(*memory_);
    device_->PushUsed((*chain)->head, 0);
  }
  EXPECT_TRUE(device_->ShouldNotify());   // used idx 6 passed 5
  EXPECT_FALSE(device_->ShouldNotify());  // nothing new
}

TEST_F(VirtqueueTest, EnableNotificationsPublishesAvailEvent) {
  Build(true);
  GuestBuffer out[] = {{data_gpa_, 8}};
  ASSERT_TRUE(driver_->Add(out, {}).ok());
  EXPECT_TRUE(driver_->NeedsKick());  // avail_event 0 at start
  auto chain = device_->Pop(*memory_);
  device_->PushUsed((*chain)->head, 0);
  EXPECT_FALSE(device_->EnableNotifications());
  uint16_t avail_event;
  std::memcpy(&avail_event, driver_->used_ring().data() + 4 + 8 * kSize, 2);
  EXPECT_EQ(avail_event, 1);
  ASSERT_TRUE(driver_->Add(out, {}).ok());
  EXPECT_TRUE(driver_->NeedsKick());
}

TEST_F(VirtqueueTest, NoInterruptFlagSuppressesWithoutEventIdx) {
  Build(false);
  GuestBuffer out[] = {{data_gpa_, 8}};
  ASSERT_TRUE(driver_->Add(out, {}).ok());
  uint16_t no_interrupt = kAvailFlagNoInterrupt;
  std::memcpy(driver_->avail_ring().data(), &no_interrupt, 2);
  auto chain = device_->Pop(*memory_);
  device_->PushUsed((*chain)->head, 0);
  EXPECT_FALSE(device_->ShouldNotify());
}

TEST_F(VirtqueueTest, SetBaseResumesFromTheGivenIndex) {
  Build(false);
  GuestBuffer out[] = {{data_gpa_, 8}};
  ASSERT_TRUE(driver_->Add(out, {}).ok());
  ASSERT_TRUE(driver_->Add(out, {}).ok());
  device_->SetBase(1);
  auto chain = device_->Pop(*memory_);
  ASSERT_TRUE(chain->has_value());
  EXPECT_FALSE(device_->Pop(*memory_)->has_value());
  EXPECT_EQ(device_->last_avail_index(), 2);
}

TEST(VirtqueueCreateTest, RejectsBadSizesAndShortRings) {
  std::vector<uint8_t> storage(4096 + 64);
  uint8_t* base = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t{63});
  auto span = absl::MakeSpan(base, 4096);
  EXPECT_FALSE(SplitVirtqueue::Create(3, span, span, span, false, false).ok());
  EXPECT_FALSE(SplitVirtqueue::Create(0, span, span, span, false, false).ok());
  EXPECT_FALSE(SplitVirtqueue::Create(256, span.subspan(0, 100), span, span,
                                      false, false)
                   .ok());
  EXPECT_FALSE(
      SplitVirtqueue::Create(8, span.subspan(1), span, span, false, false)
          .ok());
  EXPECT_TRUE(SplitVirtqueue::Create(8, span, span, span, false, false).ok());
}

}  // namespace
}  // namespace vgpu::virtio
