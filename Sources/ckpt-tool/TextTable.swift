/// Columns of text aligned for a terminal: a header line, then one line per row, cells two
/// spaces apart, no trailing spaces.
struct TextTable {
    enum Alignment {
        case left
        case right
    }

    var header: [String]
    var alignments: [Alignment]
    var rows: [[String]] = []

    /// Renders the table.
    ///
    /// - Parameter paint: Styles a cell already padded to its column's width, given its row index
    ///   (nil for the header), its column and its unpadded text; by default the cell is unstyled.
    /// - Returns: The lines, each ending in a newline.
    func render(paint: (_ row: Int?, _ column: Int, _ cell: String, _ padded: String) -> String = { $3 }) -> String {
        var widths = header.map(\.count)
        for row in rows { for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) } }
        var output = ""
        for (index, line) in ([header] + rows).enumerated() {
            let cells = line.enumerated().map { column, cell -> String in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                // The last column is not padded on the right, so no line ends in spaces.
                let padded = alignments[column] == .right ? padding + cell : column == line.count - 1 ? cell : cell + padding
                return paint(index == 0 ? nil : index - 1, column, cell, padded)
            }
            var text = cells.joined(separator: "  ")
            while text.hasSuffix(" ") { text.removeLast() }
            output += text + "\n"
        }
        return output
    }
}
