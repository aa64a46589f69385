// starflow inspect CKPT: the checkpoint header (step, config, cursor, tensor index) without loading tensors;
// starflow convert: checkpoint weights → safetensors under the official names, and back.
#include <mpi.h>

#include <cstdio>
#include <map>

#include "core/io/model_weights.h"
#include "jobs/checkpoint.h"
#include "tools/mpi_session.h"
#include "tools/options.h"

namespace starflow::tools {

int run_inspect(int argc, char** argv) {
  bool tensors = false;
  std::string path;
  std::vector<char*> args(argv, argv + argc);
  if (argc >= 2 && argv[1][0] != '-') {
    path = argv[1];
    args.erase(args.begin() + 1);
  }
  const Option options[] = {{"--tensors", nullptr, "list every tensor with shape, offset and CRC-32",
                             [&](const std::string&) { tensors = true; }}};
  const int parsed = parse_options("inspect", "Prints a checkpoint's header: starflow inspect CKPT [--tensors]",
                                   options, static_cast<int>(args.size()), args.data());
  if (parsed >= 0) return parsed;
  if (path.empty()) {
    std::fprintf(stderr, "starflow inspect: no checkpoint given\n");
    return 2;
  }
  try {
    const jobs::CheckpointInfo info = jobs::read_checkpoint_header(path);
    const auto& h = info.header;
    std::printf("%s\n  step %lld, written %s by %d rank(s)\n", path.c_str(), (long long)info.step,
                h.value("created", "?").c_str(), h.value("world_size", 0));
    uint64_t bytes = 0;
    std::map<std::string, int> groups;
    for (const auto& t : h.at("tensors")) {
      bytes += t.at("bytes").get<uint64_t>();
      const std::string name = t.at("name");
      ++groups[name.substr(0, name.find('.'))];
    }
    std::printf("  %zu tensors, %.1f MB:", h.at("tensors").size(), bytes / 1e6);
    for (const auto& [g, n] : groups) std::printf(" %s %d", g.c_str(), n);
    std::printf("\n");
    nlohmann::json meta = h.at("meta");
    const std::string train_config = meta.value("train_config", "");
    meta.erase("train_config");
    std::printf("  meta: %s\n", meta.dump(2).c_str());
    if (!train_config.empty()) std::printf("  training config:\n%s\n", train_config.c_str());
    if (tensors)
      for (const auto& t : h.at("tensors"))
        std::printf("  %-60s %-18s offset %12llu crc32 %s\n", t.at("name").get<std::string>().c_str(),
                    t.at("shape").dump().c_str(), (unsigned long long)t.at("offset").get<uint64_t>(),
                    t.at("crc32").get<std::string>().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "starflow inspect: %s\n", e.what());
    return 2;
  }
}

int run_convert(int argc, char** argv) {
  std::string from, to;
  bool ema = false;
  const Option options[] = {
      {"--from", "FILE", "a checkpoint (.sfckpt)", [&](const std::string& v) { from = v; }},
      {"--to", "FILE", "the safetensors file to write (official names, config in metadata)",
       [&](const std::string& v) { to = v; }},
      {"--ema", nullptr, "export the EMA weights instead of the raw ones", [&](const std::string&) { ema = true; }},
  };
  const int parsed = parse_options("convert",
                                   "Exports a checkpoint's weights to safetensors under the official ml-starflow "
                                   "names: the file `starflow sample --weights` reads, and that a training config's `init_weights` "
                                   "key starts a fresh run from.",
                                   options, argc, argv);
  if (parsed >= 0) return parsed;
  if (from.empty() || to.empty()) {
    std::fprintf(stderr, "starflow convert: give --from CKPT and --to FILE.safetensors\n");
    return 2;
  }
  MpiSession mpi(argc, argv, MPI_THREAD_FUNNELED);
  int status = 0;
  try {
    jobs::CheckpointReader reader(MPI_COMM_SELF, from);
    const auto& meta = reader.info().header.at("meta");
    const core::FlowConfig cfg = core::FlowConfig::from_official_json(meta.at("model_config").dump());
    core::StarFlowModel<float> model(cfg);
    const std::string prefix = ema ? "ema." : "model.";
    for (const core::ParameterView& v : model.layout().views()) {
      if (reader.shape(prefix + v.name) != v.shape) throw std::runtime_error(from + ": tensor '" + prefix + v.name + "' has the wrong shape");
      reader.read(prefix + v.name, model.parameters().data() + v.offset);
    }
    core::io::save_weights(model, to, {{"source", from}, {"step", std::to_string(reader.info().step)}});
    std::printf("wrote %s (%lld parameters, step %lld)\n", to.c_str(), (long long)model.layout().parameter_count(),
                (long long)reader.info().step);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "starflow convert: %s\n", e.what());
    status = 2;
  }
  return status;
}

}  // namespace starflow::tools
