// The loss curve of a training run as a PNG (written at the end of `starflow train`): the training curve and a
// smoothed line against the step, the held-out evaluations as marked points, tick labels and axis titles,
// drawn without any plotting library.
#pragma once
#include <string>
#include <vector>

namespace starflow::jobs {

struct CurvePoint {
  double step, value;
};

struct LossPlot {
  std::vector<CurvePoint> curve;    // every training step (light) and its moving average (dark)
  std::vector<CurvePoint> heldout;  // held-out evaluations: orange points joined by a line
  std::string x_title = "step", y_title = "loss";  // lowercase letters, digits, ' ', '/', '-', '.'
};

// Writes a width×height RGB PNG to path (atomically). Non-finite points are left out.
void write_loss_plot(const std::string& path, const LossPlot& plot, int width = 800, int height = 480);

}  // namespace starflow::jobs
