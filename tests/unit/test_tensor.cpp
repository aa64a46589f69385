// Shape helpers.
#include <gtest/gtest.h>
#include "core/tensor.h"
using namespace starflow::core;
TEST(Tensor, ShapeAndNumel) {
  Tensor<float> t({3, 4, 8, 8}, 1.5f);
  EXPECT_EQ(t.size(), 768);
  EXPECT_EQ(shape_string(t.shape), "[3, 4, 8, 8]");
  EXPECT_EQ(numel({}), 1);
}
