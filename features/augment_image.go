package features

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// checkImageRegion checks that the run of columns from offset holds channels planes of a
// height×width image, each row-major, one after the other (channels 0 means 1).
func checkImageRegion(kind string, channels, height, width, offset, cols int) error {
	if height <= 0 || width <= 0 {
		return fmt.Errorf("augment: %s: image size %d×%d must be positive (set Height and Width, e.g. 8×8 for digits, 28×28 for MNIST)", kind, height, width)
	}
	if channels < 0 {
		return fmt.Errorf("augment: %s: Channels %d is negative", kind, channels)
	}
	c := max(channels, 1)
	if offset < 0 || offset+c*height*width > cols {
		return fmt.Errorf("augment: %s: a %d×%d×%d image from column %d needs %d columns, the batch has %d", kind, c, height, width, offset, offset+c*height*width, cols)
	}
	return nil
}

// ImageShift translates the image held in a contiguous run of columns by a random whole number
// of pixels in each direction, filling uncovered pixels with Fill. Draws per row: dx then dy,
// each rng.IntN(2·MaxShift+1) - MaxShift; every channel of the row moves by the same (dx, dy).
type ImageShift struct {
	// Height and Width are the image size in pixels (digits: 8×8, MNIST: 28×28). Required.
	Height, Width int
	// Channels is the number of Height×Width planes, stored one after the other (the [C, H, W]
	// layout of an image input). Default (0): 1.
	Channels int
	// MaxShift is the largest shift, in pixels, in each direction. Default (0): no shift.
	MaxShift int
	// Offset is the index of the image's first column. Default: 0.
	Offset int
	// Fill is the value of uncovered pixels. Default: 0.
	Fill float32
}

// Validate reports whether the image fits in cols columns and MaxShift is not negative.
func (s ImageShift) Validate(cols int) error {
	if s.MaxShift < 0 {
		return fmt.Errorf("augment: image shift: MaxShift %d is negative", s.MaxShift)
	}
	return checkImageRegion("image shift", s.Channels, s.Height, s.Width, s.Offset, cols)
}

// Augment shifts each row's image in place.
func (s ImageShift) Augment(x []float32, rows, cols int, rng *rand.Rand) {
	checkBatch(x, rows, cols)
	if err := s.Validate(cols); err != nil {
		panic(err)
	}
	if s.MaxShift == 0 {
		return
	}
	size := s.Height * s.Width
	scratch := make([]float32, size)
	for r := range rows {
		dx := rng.IntN(2*s.MaxShift+1) - s.MaxShift
		dy := rng.IntN(2*s.MaxShift+1) - s.MaxShift
		for c := range max(s.Channels, 1) {
			start := r*cols + s.Offset + c*size
			img := x[start : start+size]
			copy(scratch, img)
			ShiftImageTo(img, scratch, s.Height, s.Width, dx, dy, s.Fill)
		}
	}
}

// ShiftImageTo writes src (height×width, row-major) translated by dx pixels right and dy pixels
// down into dst, filling uncovered pixels with fill. dst and src must not overlap.
func ShiftImageTo(dst, src []float32, height, width, dx, dy int, fill float32) {
	for y := range height {
		sy := y - dy
		row := dst[y*width : (y+1)*width]
		if sy < 0 || sy >= height {
			for x := range row {
				row[x] = fill
			}
			continue
		}
		for x := range row {
			sx := x - dx
			if sx < 0 || sx >= width {
				row[x] = fill
			} else {
				row[x] = src[sy*width+sx]
			}
		}
	}
}

// ImageRotate rotates the image held in a contiguous run of columns by a random angle about
// its centre, with bilinear interpolation; pixels that come from outside the image take Fill.
// Draws per row: the angle, (2·rng.Float64() - 1)·MaxDegrees; every channel of the row turns
// by the same angle.
type ImageRotate struct {
	// Height and Width are the image size in pixels (digits: 8×8, MNIST: 28×28). Required.
	Height, Width int
	// Channels is the number of Height×Width planes, stored one after the other (the [C, H, W]
	// layout of an image input). Default (0): 1.
	Channels int
	// MaxDegrees is the largest rotation either way, in degrees. Default (0): no rotation.
	MaxDegrees float64
	// Offset is the index of the image's first column. Default: 0.
	Offset int
	// Fill is the value of pixels rotated in from outside the image. Default: 0.
	Fill float32
}

// Validate reports whether the image fits in cols columns and MaxDegrees is finite and ≥ 0.
func (s ImageRotate) Validate(cols int) error {
	if !(s.MaxDegrees >= 0) || math.IsInf(s.MaxDegrees, 0) {
		return fmt.Errorf("augment: image rotate: MaxDegrees %g must be finite and ≥ 0", s.MaxDegrees)
	}
	return checkImageRegion("image rotate", s.Channels, s.Height, s.Width, s.Offset, cols)
}

// Augment rotates each row's image in place.
func (s ImageRotate) Augment(x []float32, rows, cols int, rng *rand.Rand) {
	checkBatch(x, rows, cols)
	if err := s.Validate(cols); err != nil {
		panic(err)
	}
	if s.MaxDegrees == 0 {
		return
	}
	size := s.Height * s.Width
	scratch := make([]float32, size)
	for r := range rows {
		deg := (2*rng.Float64() - 1) * s.MaxDegrees
		for c := range max(s.Channels, 1) {
			start := r*cols + s.Offset + c*size
			img := x[start : start+size]
			copy(scratch, img)
			RotateImageTo(img, scratch, s.Height, s.Width, deg, s.Fill)
		}
	}
}

// RotateImageTo writes src (height×width, row-major, y down) rotated counter-clockwise as
// displayed by degrees about the image centre into dst, sampling src bilinearly at the inverse
// image of each dst pixel; samples outside src take fill. dst and src must not overlap.
func RotateImageTo(dst, src []float32, height, width int, degrees float64, fill float32) {
	sin, cos := math.Sincos(degrees * math.Pi / 180)
	cx, cy := float64(width-1)/2, float64(height-1)/2
	f := float64(fill)
	at := func(x, y int) float64 {
		if x < 0 || x >= width || y < 0 || y >= height {
			return f
		}
		return float64(src[y*width+x])
	}
	for y := range height {
		v := cy - float64(y) // y up
		for x := range width {
			u := float64(x) - cx
			// Inverse rotation (by -θ) of the destination point, back to image coordinates.
			sx := cx + u*cos + v*sin
			sy := cy + u*sin - v*cos
			fx0, fy0 := math.Floor(sx), math.Floor(sy)
			x0, y0 := int(fx0), int(fy0)
			fx, fy := sx-fx0, sy-fy0
			var p00, p01, p10, p11 float64
			if x0 >= 0 && y0 >= 0 && x0+1 < width && y0+1 < height {
				i := y0*width + x0
				p00, p01 = float64(src[i]), float64(src[i+1])
				p10, p11 = float64(src[i+width]), float64(src[i+width+1])
			} else {
				p00, p01, p10, p11 = at(x0, y0), at(x0+1, y0), at(x0, y0+1), at(x0+1, y0+1)
			}
			top := p00 + fx*(p01-p00)
			bottom := p10 + fx*(p11-p10)
			dst[y*width+x] = float32(top + fy*(bottom-top))
		}
	}
}
