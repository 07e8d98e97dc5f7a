/* The 3x3 singular value decomposition and the pose update of apply_pose_delta, for the CUDA
 * kernel (cuda/pose_delta.cu; the CPU path is NumPy). C11 and CUDA C++: GM_HD functions only,
 * float64 throughout; the host emulation of the kernel matches NumPy to 1e-12 where the result
 * is well determined (see gm_svd3_orthonormalize). */
#ifndef GEOMOPS_SVD3_MATH_H
#define GEOMOPS_SVD3_MATH_H

#include <float.h>
#include <math.h>

#include "geomops/common.h"

#define GM_SVD3_MAX_SWEEPS 64

/* A = U diag(s) V^T for a row-major 3x3 A: U, V orthogonal (row-major), s[0] >= s[1] >= s[2] >= 0.
 * One-sided Jacobi (Hestenes) on the columns of A scaled to max |a_ij| = 1: plane rotations
 * until every pair of columns is orthogonal to working precision, which also determines the
 * singular vectors of tiny singular values accurately. Columns of U for zero singular values
 * (rank-deficient A) complete a right-handed basis; any choice is valid there. */
GM_HD void gm_svd3(const double* A, double* U, double* s, double* V) {
    double m = 0.0;
    for (int k = 0; k < 9; ++k) m = fmax(m, fabs(A[k]));
    double B[9];
    for (int k = 0; k < 9; ++k) {
        B[k] = m > 0.0 ? A[k] / m : 0.0;
        V[k] = (k % 4 == 0) ? 1.0 : 0.0;
    }
    for (int sweep = 0; sweep < GM_SVD3_MAX_SWEEPS; ++sweep) {
        int rotated = 0;
        for (int pair = 0; pair < 3; ++pair) {
            const int p = pair == 2 ? 1 : 0, q = pair == 0 ? 1 : 2; /* (0,1), (0,2), (1,2) */
            double alpha = 0.0, beta = 0.0, gamma = 0.0;
            for (int i = 0; i < 3; ++i) {
                alpha += B[3 * i + p] * B[3 * i + p];
                beta += B[3 * i + q] * B[3 * i + q];
                gamma += B[3 * i + p] * B[3 * i + q];
            }
            if (!(fabs(gamma) > DBL_EPSILON * sqrt(alpha * beta))) continue;
            rotated = 1;
            const double zeta = (beta - alpha) / (2.0 * gamma);
            const double t = (zeta >= 0.0 ? 1.0 : -1.0) / (fabs(zeta) + hypot(1.0, zeta));
            const double c = 1.0 / sqrt(1.0 + t * t), sn = c * t;
            for (int i = 0; i < 3; ++i) {
                const double bp = B[3 * i + p], bq = B[3 * i + q];
                B[3 * i + p] = c * bp - sn * bq;
                B[3 * i + q] = sn * bp + c * bq;
                const double vp = V[3 * i + p], vq = V[3 * i + q];
                V[3 * i + p] = c * vp - sn * vq;
                V[3 * i + q] = sn * vp + c * vq;
            }
        }
        if (!rotated) break;
    }
    /* singular values = column norms, sorted descending (stable) with their columns */
    double sv[3];
    int order[3] = {0, 1, 2};
    for (int j = 0; j < 3; ++j) sv[j] = sqrt(B[j] * B[j] + B[3 + j] * B[3 + j] + B[6 + j] * B[6 + j]);
    for (int a = 1; a < 3; ++a)
        for (int b = a; b > 0 && sv[order[b]] > sv[order[b - 1]]; --b) {
            const int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    double Vs[9];
    for (int j = 0; j < 3; ++j) {
        const int k = order[j];
        s[j] = sv[k] * m;
        for (int i = 0; i < 3; ++i) {
            Vs[3 * i + j] = V[3 * i + k];
            U[3 * i + j] = sv[k] > DBL_MIN ? B[3 * i + k] / sv[k] : 0.0;
        }
    }
    for (int k = 0; k < 9; ++k) V[k] = Vs[k];
    /* rank deficiency: complete U (column j is zero when sv <= DBL_MIN) */
    if (!(sv[order[0]] > DBL_MIN)) {
        for (int k = 0; k < 9; ++k) U[k] = (k % 4 == 0) ? 1.0 : 0.0;
        return;
    }
    if (!(sv[order[1]] > DBL_MIN)) {
        /* u1: u0 x e_k for the axis k where u0 is smallest, normalised */
        int k = 0;
        for (int i = 1; i < 3; ++i)
            if (fabs(U[3 * i]) < fabs(U[3 * k])) k = i;
        double e[3] = {0.0, 0.0, 0.0};
        e[k] = 1.0;
        double w[3] = {U[3] * e[2] - U[6] * e[1], U[6] * e[0] - U[0] * e[2], U[0] * e[1] - U[3] * e[0]};
        const double len = sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2]);
        for (int i = 0; i < 3; ++i) U[3 * i + 1] = w[i] / len;
    }
    if (!(sv[order[2]] > DBL_MIN)) { /* u2 = u0 x u1 */
        U[2] = U[3] * U[7] - U[6] * U[4];
        U[5] = U[6] * U[1] - U[0] * U[7];
        U[8] = U[0] * U[4] - U[3] * U[1];
    }
}

/* The orthogonal matrix nearest to A (row-major 3x3): R = U V^T of gm_svd3 (unique when A is
 * invertible). With fix_reflection, when R is a reflection (det < 0) the last column of U is
 * negated first, so R is a rotation (U diag(1, 1, -1) V^T); that column belongs to the smallest
 * singular value, so the result is ill-determined (as LAPACK's) when the two smallest are
 * (nearly) equal: a reflection times a delta rotation by w radians leaves a gap of ~w^2/2. */
GM_HD void gm_svd3_orthonormalize(const double* A, int fix_reflection, double* R) {
    double U[9], s[3], V[9];
    gm_svd3(A, U, s, V);
    for (int i = 0; i < 3; ++i)
        for (int k = 0; k < 3; ++k)
            R[3 * i + k] = U[3 * i] * V[3 * k] + U[3 * i + 1] * V[3 * k + 1] + U[3 * i + 2] * V[3 * k + 2];
    if (!fix_reflection) return;
    const double det = R[0] * (R[4] * R[8] - R[5] * R[7]) - R[1] * (R[3] * R[8] - R[5] * R[6]) +
                       R[2] * (R[3] * R[7] - R[4] * R[6]);
    if (det < 0.0)
        for (int i = 0; i < 3; ++i)
            for (int k = 0; k < 3; ++k) R[3 * i + k] -= 2.0 * U[3 * i + 2] * V[3 * k + 2];
}

/* apply_pose_delta for one pose (row-major 4x4): out = pose @ D(delta) with
 *   D = [[1, -gamma, beta, a], [gamma, 1, -alpha, b], [-beta, alpha, 1, c], [0, 0, 0, 1]],
 * delta = (alpha, beta, gamma, a, b, c); with `orthonormalize` the rotation block of the result
 * is replaced by gm_svd3_orthonormalize of it. out may be pose. */
GM_HD void gm_pose_delta_apply(const double* pose, const double* delta, int orthonormalize,
                               int fix_reflection, double* out) {
    const double al = delta[0], be = delta[1], ga = delta[2];
    const double D[16] = {1.0, -ga, be,  delta[3], ga,  1.0, -al, delta[4],
                          -be, al,  1.0, delta[5], 0.0, 0.0, 0.0, 1.0};
    double N[16];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
            N[4 * i + j] = pose[4 * i] * D[j] + pose[4 * i + 1] * D[4 + j] + pose[4 * i + 2] * D[8 + j] +
                           pose[4 * i + 3] * D[12 + j];
    if (orthonormalize) {
        const double A[9] = {N[0], N[1], N[2], N[4], N[5], N[6], N[8], N[9], N[10]};
        double R[9];
        gm_svd3_orthonormalize(A, fix_reflection, R);
        for (int i = 0; i < 3; ++i)
            for (int k = 0; k < 3; ++k) N[4 * i + k] = R[3 * i + k];
    }
    for (int k = 0; k < 16; ++k) out[k] = N[k];
}

#endif /* GEOMOPS_SVD3_MATH_H */
