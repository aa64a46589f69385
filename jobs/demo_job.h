// `starflow demo`: the whole pipeline in one command, each stage the real job in a child process.
//  - fashion-mnist: preprocess with the bundled autoencoder, train a class-conditional deep-shallow STARFlow
//    on 2 MPI ranks, sample a 10×10 guided grid (one row per class), and evaluate held-out NLL and the Bayes
//    classifier (argmin over classes of the NLL).
//  - emoji: the text-conditional variant on the captioned emoji set (tools/fetch-emoji.sh): preprocess with
//    the word-vector text encoder, train on 2 MPI ranks, sample a guided grid with one row per caption.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace starflow::jobs {

struct DemoOptions {
  std::string dataset = "fashion-mnist";  // fashion-mnist | emoji
  std::string out_dir;                    // default out/demo (fashion-mnist), out/demo-emoji (emoji)
  std::string binary;                     // this starflow executable (for the mpirun children)
  int ranks = 2;
  int64_t steps = 0;                      // 0: the dataset's default (900 fashion-mnist, 1500 emoji)
  int64_t eval_samples = 1000;            // fashion-mnist: held-out images
  int64_t limit = 0;                      // emoji: use only the first N captioned images (0: all)
  std::vector<std::string> captions;      // emoji: one grid row each (default kDefaultEmojiCaptions)
  double cfg = -1;                        // guidance of the grid; < 0: the dataset's default (2 / 3)
  uint64_t seed = 0;
};

inline const std::vector<std::string> kDefaultEmojiCaptions = {"red heart", "blue heart", "green heart", "smiling face",
                                                               "cat",       "tree",       "fire",        "sun"};

// Returns the process exit status; prints progress and the summary, writes summary.json. Throws
// std::runtime_error naming the stage or option at fault.
int run_demo(const DemoOptions& options);

}  // namespace starflow::jobs
