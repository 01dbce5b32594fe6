// pair_style mdmlkit: HDNNPs written by mdmlkit (n2p2 format) inside LAMMPS, as a plugin.
//
//   pair_style mdmlkit <model_dir> [mindist <Å>] [tolerance <t>] [warn_every <steps>]
//                                  [triplets yes|no]
//   pair_coeff * * <element of type 1> <element of type 2> ...
//
// metal units (Å, eV); full neighbour list, newton pair on; per-atom energy and virial.
// compute pair ID with this style gives c_ID[1] = symmetry-function values outside the
// training range in the last evaluation, c_ID[2] = the running total.
#ifndef MDMLKIT_LMP_PAIR_MDMLKIT_H
#define MDMLKIT_LMP_PAIR_MDMLKIT_H

#include "hdnnp_model.h"
#include "pair.h"

#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairMdmlkit : public Pair {
 public:
  PairMdmlkit(class LAMMPS *);
  ~PairMdmlkit() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void *extract(const char *, int &) override;

 protected:
  std::unique_ptr<mdmlkit_lmp::Model> model;
  std::vector<int> type_element;   // LAMMPS type (1-based) -> model element
  double min_distance = 0.5;       // Å
  double tolerance = 1e-6;         // relative, of Gmax - Gmin
  bigint warn_every = 1000;        // steps between extrapolation warnings
  bool force_triplets = false;
  bool tabulate = true;         // radial factors from quintic tables (keyword table yes|no)
  double extrap_last = 0.0;        // all ranks, last evaluation
  double extrap_total = 0.0;       // all ranks, running total
  bigint extrap_calls = 0;         // evaluations that extrapolated
  bigint last_warned = -1;
  std::vector<mdmlkit_lmp::Neighbour> nb;
  std::vector<int> nb_index;
  mdmlkit_lmp::Workspace ws;
  void allocate();
};

}    // namespace LAMMPS_NS

#endif
