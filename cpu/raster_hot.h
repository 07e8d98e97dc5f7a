/* ISA body of the rasterizer (compiled per ISA by isa_variants.h from cpu/raster.c): one
 * tile's coverage, depth test and resolve. The variants differ in instruction selection only:
 * contraction stays off (cpu/raster.c), so every ISA gives the same bits. */

/* bytes from the staging row src to the buffer at dst: streaming (non-temporal) stores when dst
 * is aligned to a cache line and bytes is a whole number of them, which spares reading the
 * lines into the cache first (the frame's buffers do not fit in it); plain copies otherwise */
static GM_ISA_ATTR inline void GM_IFN(stream_out)(void* dst, const void* src, size_t bytes) {
#if GM_ISA_X86
    if (((uintptr_t)dst & 63) == 0 && (bytes & 63) == 0) {
        char* d = (char*)dst;
        const char* s = (const char*)src;
        for (size_t o = 0; o < bytes; o += 64) {
#if GM_ISA_ID == GM_ISA_AVX512
            _mm512_stream_si512((void*)(d + o), _mm512_load_si512((const void*)(s + o)));
#elif GM_ISA_ID == GM_ISA_AVX2
            _mm256_stream_si256((__m256i*)(d + o), _mm256_load_si256((const __m256i*)(s + o)));
            _mm256_stream_si256((__m256i*)(d + o + 32), _mm256_load_si256((const __m256i*)(s + o + 32)));
#else
            for (int h = 0; h < 64; h += 16)
                _mm_stream_si128((__m128i*)(d + o + h), _mm_load_si128((const __m128i*)(s + o + h)));
#endif
        }
        return;
    }
#endif
    memcpy(dst, src, bytes);
}

/* Coverage + depth test of one tile (on inverse depth: larger is closer), then resolve. */
static GM_ISA_ATTR void GM_IFN(raster_tile)(const gm_raster_tile_job* J, const gm_raster_tri* const* list,
                                            int64_t count, int32_t tx, int32_t ty) {
    const gm_raster_params* p = J->p;
    double izbuf[TILE * TILE];
    const gm_raster_tri* win[TILE * TILE];
    const int32_t X0 = tx * TILE, Y0 = ty * TILE;
    const int32_t X1 = X0 + TILE - 1 < p->width - 1 ? X0 + TILE - 1 : p->width - 1;
    const int32_t Y1 = Y0 + TILE - 1 < p->height - 1 ? Y0 + TILE - 1 : p->height - 1;
    /* izbuf[k] > 0 marks the covered pixels (a winner has iz >= 1 / far > 0), so win needs no
     * clearing, and a tile without pieces needs no buffers at all */
    if (count > 0)
        for (int k = 0; k < TILE * TILE; ++k) izbuf[k] = 0.0;
    const double inv_far = J->inv_far;
    const double* ray_x = J->ray_x;
    for (int64_t e = 0; e < count; ++e) {
        const gm_raster_tri* t = list[e];
#if defined(__GNUC__)
        /* records of one tile are scattered over the chunk arrays: fetch a few ahead */
        if (e + PREFETCH < count) __builtin_prefetch(list[e + PREFETCH]);
#endif
        int32_t c0 = t->c0 > X0 ? t->c0 : X0, c1 = t->c1 < X1 ? t->c1 : X1;
        int32_t r0 = t->r0 > Y0 ? t->r0 : Y0, r1 = t->r1 < Y1 ? t->r1 : Y1;
        if (c0 > c1 || r0 > r1) continue;
        /* E(c, r) = E(c0, r0) + ex (r - r0) SUB - ey (c - c0) SUB, stepped; the piece's fields in
         * locals (registers) for the pixel loop */
        int64_t E0[3], dc[3], dr[3];
        const int64_t px0 = (int64_t)c0 * SUB, py0 = (int64_t)r0 * SUB;
        for (int k = 0; k < 3; ++k) {
            int k1 = k == 2 ? 0 : k + 1;
            const int64_t ex = (int64_t)t->x[k1] - t->x[k], ey = (int64_t)t->y[k1] - t->y[k];
            E0[k] =
                gm_raster_edge(t->x[k], t->y[k], t->x[k1], t->y[k1], px0, py0) + gm_raster_edge_bias(ex, ey);
            dc[k] = ey * SUB;
            dr[k] = ex * SUB;
        }
        const double ta = t->a, tb = t->b, te = t->e, lo = (double)t->ilo, hi = (double)t->ihi;
        for (int32_t r = r0; r <= r1; ++r) {
            int64_t E[3] = {E0[0], E0[1], E0[2]};
            const double rowb = gm_raster_axpb(tb, J->ray_y[r], te);
            const int32_t row = (r - Y0) * TILE - X0;
            for (int32_t c = c0; c <= c1; ++c) {
                if ((E[0] | E[1] | E[2]) >= 0) {
                    const double iz = gm_raster_inv_depth_at(ta, lo, hi, ray_x[c], rowb);
                    const int32_t k = row + c;
                    if (iz >= inv_far && iz > izbuf[k]) {
                        izbuf[k] = iz;
                        win[k] = t;
                    }
                }
                E[0] -= dc[0];
                E[1] -= dc[1];
                E[2] -= dc[2];
            }
            E0[0] += dr[0];
            E0[1] += dr[1];
            E0[2] += dr[2];
        }
    }
    /* resolve row by row into staging rows (L1): background runs, then the covered pixels in the
     * three shading stages (the middle one, the lighting, as one vector loop over them); each
     * finished row goes to the buffers in whole cache lines (GM_IFN(stream_out)) */
    const gm_raster_setup* s = J->s;
    int32_t obj = 0;
    int32_t pc[TILE], po[TILE], pf[TILE];
    double pz[TILE], pdx[TILE], pb[TILE][3], poc[TILE][3], pcr[TILE], pcg[TILE], pcb[TILE];
    double pnx[TILE], pny[TILE], pnz[TILE], pfa[TILE];
    gm_raster_rows rows;
    gm_raster_params q = *p; /* the same parameters, writing to the staging rows (index c - X0) */
    q.rgb = rows.rgb;
    q.depth = rows.depth;
    q.instance_index = rows.instance_index;
    q.object_coordinates = rows.object_coordinates;
    q.class_index = p->class_index ? rows.class_index : NULL;
    q.triangle_id = p->triangle_id ? rows.triangle_id : NULL;
    q.barycentrics = p->barycentrics ? rows.barycentrics : NULL;
    q.cam_coordinates = p->cam_coordinates ? rows.cam_coordinates : NULL;
    q.normals = p->normals ? rows.normals : NULL;
    const int32_t n_px = X1 - X0 + 1;
    for (int32_t r = Y0; r <= Y1; ++r) {
        const double ry = J->ray_y[r];
        int m = 0;
        for (int32_t c = X0; c <= X1; ++c) {
            const int32_t k = (r - Y0) * TILE + (c - X0);
            if (count == 0 || !(izbuf[k] > 0.0)) {
                int32_t n = 1; /* the run of uncovered pixels from here */
                while (c + n <= X1 && (count == 0 || !(izbuf[k + n] > 0.0))) ++n;
                clear_run(&q, c - X0, n, J->bg_rgba);
                c += n - 1;
                continue;
            }
            const gm_raster_tri* t = win[k];
            int32_t gface = t->gface;
            while (gface < s->face_base[obj]) --obj;
            while (gface >= s->face_base[obj + 1]) ++obj;
            const int32_t face = (int32_t)(gface - s->face_base[obj]);
            double col[3];
            gm_vec3 n;
            gm_raster_surface(p, &p->objects[obj], s->cam + s->vert_base[obj], face, ray_x[c], ry, pb[m],
                              poc[m], col, &n);
            pc[m] = c;
            po[m] = obj;
            pf[m] = face;
            pz[m] = izbuf[k]; /* inverse depth, inverted below in one vector loop */
            pdx[m] = ray_x[c];
            pcr[m] = col[0];
            pcg[m] = col[1];
            pcb[m] = col[2];
            pnx[m] = n.x;
            pny[m] = n.y;
            pnz[m] = n.z;
            ++m;
        }
        for (int j = 0; j < m; ++j) pz[j] = 1.0 / pz[j];
        for (int j = 0; j < m; ++j)
            gm_raster_light(p, pdx[j], ry, gm_raster_ray_norm(pdx[j], ry), &pnx[j], &pny[j], &pnz[j], &pfa[j],
                            &pcr[j], &pcg[j], &pcb[j]);
        for (int j = 0; j < m; ++j) {
            const double rgb[3] = {pcr[j], pcg[j], pcb[j]};
            gm_raster_write_pixel(&q, &p->objects[po[j]], pc[j] - X0, pf[j], pz[j], pdx[j], ry, pb[j], poc[j],
                                  gm_make_vec3(pnx[j], pny[j], pnz[j]), pfa[j], rgb);
        }
        const int64_t i0 = (int64_t)r * p->width + X0;
        GM_IFN(stream_out)(p->rgb + 4 * i0, rows.rgb, 4 * (size_t)n_px);
        GM_IFN(stream_out)(p->depth + i0, rows.depth, sizeof(float) * (size_t)n_px);
        GM_IFN(stream_out)(p->instance_index + i0, rows.instance_index, sizeof(int16_t) * (size_t)n_px);
        GM_IFN(stream_out)
        (p->object_coordinates + 3 * i0, rows.object_coordinates, 3 * sizeof(float) * (size_t)n_px);
        if (p->class_index)
            GM_IFN(stream_out)(p->class_index + i0, rows.class_index, sizeof(int16_t) * (size_t)n_px);
        if (p->triangle_id)
            GM_IFN(stream_out)(p->triangle_id + i0, rows.triangle_id, sizeof(int32_t) * (size_t)n_px);
        if (p->barycentrics)
            GM_IFN(stream_out)(p->barycentrics + 3 * i0, rows.barycentrics, 3 * sizeof(float) * (size_t)n_px);
        if (p->cam_coordinates) GM_IFN(stream_out)
        (p->cam_coordinates + 4 * i0, rows.cam_coordinates, 4 * sizeof(float) * (size_t)n_px);
        if (p->normals)
            GM_IFN(stream_out)(p->normals + 4 * i0, rows.normals, 4 * sizeof(float) * (size_t)n_px);
    }
#if GM_ISA_X86
    _mm_sfence(); /* the streaming stores are weakly ordered: complete them before the tile is done */
#endif
}
