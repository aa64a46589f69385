// The loss curve of a training run as a PNG (written at the end of `starflow train`): loss and a smoothed
// line against the step, with tick labels, drawn without any plotting library.
#pragma once
#include <string>
#include <vector>

namespace starflow::jobs {

struct CurvePoint {
  double step, value;
};

// Writes a width×height RGB PNG to path (atomically). Non-finite points are left out.
void write_loss_plot(const std::string& path, const std::vector<CurvePoint>& points, const std::string& title,
                     int width = 800, int height = 480);

}  // namespace starflow::jobs
