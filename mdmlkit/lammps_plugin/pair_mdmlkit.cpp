// pair_style mdmlkit (see pair_mdmlkit.h and docs/lammps.md).
#include "pair_mdmlkit.h"

#include <cstdio>

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <cmath>
#include <cstring>
#include <mpi.h>

using namespace LAMMPS_NS;

PairMdmlkit::PairMdmlkit(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;    // the virial is summed pair by pair
  centroidstressflag = 2;         // CENTROID_NOTAVAIL
  nextra = 2;
  pvector = new double[nextra];
  pvector[0] = pvector[1] = 0.0;
}

PairMdmlkit::~PairMdmlkit()
{
  delete[] pvector;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMdmlkit::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 1; i < n; ++i)
    for (int j = 1; j < n; ++j) setflag[i][j] = 0;
}

void PairMdmlkit::settings(int narg, char **arg)
{
  if (narg < 1)
    error->all(FLERR, "Illegal pair_style mdmlkit command: expected pair_style mdmlkit <model_dir> "
                      "[mindist <Å>] [tolerance <t>] [warn_every <n>] [triplets yes|no] [table yes|no]");
  std::string dir = arg[0];
  for (int iarg = 1; iarg < narg; iarg += 2) {
    if (iarg + 1 >= narg)
      error->all(FLERR, "pair_style mdmlkit: keyword {} needs a value", arg[iarg]);
    std::string key = arg[iarg];
    if (key == "mindist") min_distance = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
    else if (key == "tolerance") tolerance = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
    else if (key == "warn_every") warn_every = utils::bnumeric(FLERR, arg[iarg + 1], false, lmp);
    else if (key == "triplets") force_triplets = utils::logical(FLERR, arg[iarg + 1], false, lmp);
    else if (key == "table") tabulate = utils::logical(FLERR, arg[iarg + 1], false, lmp);
    else error->all(FLERR, "pair_style mdmlkit: unknown keyword {}", key);
  }
  if (min_distance < 0.0 || tolerance < 0.0 || warn_every < 1)
    error->all(FLERR, "pair_style mdmlkit: mindist and tolerance must be >= 0, warn_every >= 1");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style mdmlkit needs units metal (Å, eV); got units {}",
               update->unit_style);
  try {
    model = std::make_unique<mdmlkit_lmp::Model>(dir, force_triplets, tabulate);
  } catch (mdmlkit_lmp::ModelError &e) {
    error->all(FLERR, "pair_style mdmlkit: {}", e.what());
  }
  if (comm->me == 0) {
    char how[64];
    if (model->tabulated())
      std::snprintf(how, sizeof(how), "tabulated (largest error %.1e)", model->table_error());
    else
      std::snprintf(how, sizeof(how), "exact");
    utils::logmesg(lmp, "mdmlkit HDNNP from {}: elements {}, cutoff {} Å, radial factors {}\n", dir,
                   model->element_list(), model->cutoff(), how);
  }
}

void PairMdmlkit::coeff(int narg, char **arg)
{
  if (!model) error->all(FLERR, "pair_coeff before pair_style mdmlkit <model_dir>");
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes)
    error->all(FLERR, "pair_coeff * * needs one element per atom type ({} types), got {} "
                      "(model elements: {})", ntypes, narg - 2, model->element_list());
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_style mdmlkit: pair_coeff must be 'pair_coeff * * <elements>'");
  type_element.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; ++t) {
    int e = model->element_index(arg[1 + t]);
    if (e < 0)
      error->all(FLERR, "pair_style mdmlkit: element {} (atom type {}) is not in the model {} "
                        "(elements {})", arg[1 + t], t, model->directory(), model->element_list());
    type_element[t] = e;
  }
  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j) setflag[i][j] = 1;
}

void PairMdmlkit::init_style()
{
  if (force->newton_pair == 0) error->all(FLERR, "pair_style mdmlkit requires newton pair on");
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style mdmlkit requires atom IDs");
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

double PairMdmlkit::init_one(int, int)
{
  return model->cutoff();
}

void PairMdmlkit::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  double **x = atom->x;
  double **f = atom->f;
  int *type = atom->type;
  tagint *tag = atom->tag;
  const int inum = list->inum;
  int *ilist = list->ilist;
  int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const double min2 = min_distance * min_distance;
  double n_extrap = 0.0;

  for (int ii = 0; ii < inum; ++ii) {
    const int i = ilist[ii];
    const int el = type_element[type[i]];
    const double rc = model->element(el).rc_max, rc2 = rc * rc;
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    nb.clear();
    nb_index.clear();
    for (int jj = 0; jj < jnum; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double r2 = dx * dx + dy * dy + dz * dz;
      if (r2 >= rc2) continue;
      if (r2 < min2)
        error->one(FLERR, "pair_style mdmlkit: atoms {} and {} are {:.4f} Å apart, closer than "
                          "mindist {} Å (step {})", tag[i], tag[j], std::sqrt(r2), min_distance,
                   update->ntimestep);
      mdmlkit_lmp::Neighbour n;
      n.d[0] = dx;
      n.d[1] = dy;
      n.d[2] = dz;
      n.r = std::sqrt(r2);
      n.el = type_element[type[j]];
      nb.push_back(n);
      nb_index.push_back(j);
    }
    int nx = 0;
    const double e = model->energy(el, nb, ws, tolerance, &nx);
    n_extrap += nx;
    if (eflag_global) eng_vdwl += e;
    if (eflag_atom) eatom[i] += e;
    const int nn = (int)nb.size();
    for (int k = 0; k < nn; ++k) {
      const int j = nb_index[k];
      const double *g = &ws.grad[3 * k];    // dE/d(x_j - x_i)
      f[i][0] += g[0];
      f[i][1] += g[1];
      f[i][2] += g[2];
      f[j][0] -= g[0];
      f[j][1] -= g[1];
      f[j][2] -= g[2];
      if (vflag_either) {
        const double *d = nb[k].d;
        const double v[6] = {-d[0] * g[0], -d[1] * g[1], -d[2] * g[2],
                             -d[0] * g[1], -d[0] * g[2], -d[1] * g[2]};
        if (vflag_global)
          for (int a = 0; a < 6; ++a) virial[a] += v[a];
        if (vflag_atom)
          for (int a = 0; a < 6; ++a) {
            vatom[i][a] += 0.5 * v[a];
            vatom[j][a] += 0.5 * v[a];
          }
      }
    }
  }

  // extrapolation: per evaluation (all ranks) and running totals
  pvector[0] = n_extrap;    // compute pair sums pvector over the ranks
  double all = 0.0;
  MPI_Allreduce(&n_extrap, &all, 1, MPI_DOUBLE, MPI_SUM, world);
  extrap_last = all;
  extrap_total += all;
  pvector[1] = comm->me == 0 ? extrap_total : 0.0;
  if (all > 0.0) {
    ++extrap_calls;
    const bigint step = update->ntimestep;
    if (comm->me == 0 && (last_warned < 0 || step - last_warned >= warn_every)) {
      error->warning(FLERR, "pair_style mdmlkit: {} symmetry-function values outside the training "
                            "range at step {} ({} evaluations extrapolated so far, {} values in "
                            "all); the model is extrapolating", (bigint)all, step, extrap_calls,
                     (bigint)extrap_total);
      last_warned = step;
    }
  }
}

void *PairMdmlkit::extract(const char *name, int &dim)
{
  dim = 0;
  if (strcmp(name, "extrapolations") == 0) return (void *)&extrap_last;
  if (strcmp(name, "extrapolations_total") == 0) return (void *)&extrap_total;
  return nullptr;
}
